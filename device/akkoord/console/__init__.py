"""The serial admin console (docs/CONSOLE.md): framing, commands, authentication, adapters."""
