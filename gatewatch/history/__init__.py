"""The history store: closed windows and alert records kept in SQL (SQLite or PostgreSQL)
for history, patterns and forecasts; ``gatewatch history`` fills it from Kafka."""
