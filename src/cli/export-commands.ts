/** export: other disk formats of an image (filled in by the formats work). */
import type { Command } from "commander";
import type { KilnHome } from "../home.js";

export function registerExportCommands(_program: Command, _home: () => KilnHome): void {}
