"""The evalsuite dashboard: a read-only Streamlit view of the DuckDB store (`dashboard/app.py`)."""
