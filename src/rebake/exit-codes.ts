/** Exit codes of the rebake commands, in a module of their own so `kiln --help` can name them without loading the rebake code. */

/** Exit code of `kiln outdated` when nothing needs a rebake (0 means: rebake needed). */
export const UP_TO_DATE_EXIT_CODE = 10;
