#!/usr/bin/env node
// The `bluez-cm` command. Subcommands live in their own modules.
const [command = 'demo'] = process.argv.slice(2);
console.error(`bluez-cm: unknown command "${command}"`);
process.exitCode = 2;
