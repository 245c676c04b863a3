/** push, iam-policy: AWS commands. */
import type { Command } from "commander";
import type { KilnHome } from "../home.js";

export function registerAwsCommands(_program: Command, _home: () => KilnHome): void {}
