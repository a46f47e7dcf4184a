"""Developer tools (not part of the installed package): harnesses for end-to-end tests and demos."""
