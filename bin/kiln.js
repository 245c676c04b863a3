#!/usr/bin/env -S node --
// "--": Node 20 takes a script argument named --env-file for its own and exits "node: FILE: not
// found" when that file is missing (nodejs/node#54232); after "--" it leaves kiln's arguments alone.
// kiln pins its AWS SDK versions (package-lock.json); the SDK's notice about Node versions
// required by *future* SDK releases is noise on every command.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const { main } = await import("../dist/src/cli/main.js");

main(process.argv).then((code) => { process.exitCode = code; });
