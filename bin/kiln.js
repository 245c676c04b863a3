#!/usr/bin/env node
// kiln pins its AWS SDK versions (package-lock.json); the SDK's notice about Node versions
// required by *future* SDK releases is noise on every command.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const { main } = await import("../dist/src/cli/main.js");

main(process.argv).then((code) => { process.exitCode = code; });
