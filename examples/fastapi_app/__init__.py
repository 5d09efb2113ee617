"""A FastAPI application that lives on SQLAlchemy and runs Zart inside it (see README.md)."""
