"""Pure types shared by every part of labelwise. Imports nothing else from labelwise."""
