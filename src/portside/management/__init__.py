"""Management domain services (projects, users, robots) shared by the /api/v2.0 API and the CLI."""
