/** The JVM options every java cmd kiln detects starts with. */

/** A VM runs one app: let the heap use most of its memory, and let the init restart the app on OOM. */
export const JVM_OPTIONS: readonly string[] = ["-XX:MaxRAMPercentage=75", "-XX:+ExitOnOutOfMemoryError"];
