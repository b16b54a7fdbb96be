"""The query engine: a ``Query`` parsed and validated once (from a Stats API body or the
dashboard's URL), then one SQL builder for SQLite and PostgreSQL. Reports never write SQL."""

from models.stats.engine import answer, first_visit_day, run_query
from models.stats.query import Filter, Logical, Query, QueryError, parse_query

__all__ = ["Filter", "Logical", "Query", "QueryError", "answer", "first_visit_day", "parse_query",
           "run_query"]
