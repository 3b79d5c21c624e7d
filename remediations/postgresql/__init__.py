"""PostgreSQL actions on asyncpg: terminating stuck sessions."""
