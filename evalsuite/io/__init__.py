"""Result files in and out of the store: import, export, the text reports, the reference data."""
