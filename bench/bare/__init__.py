"""The bare stack for the read and memory floors: a Django project of its own that imports
nothing of ours (bench/bare/settings.py says what it keeps, and why)."""
