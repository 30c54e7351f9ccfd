"""territoire api package."""
