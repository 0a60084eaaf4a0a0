"""The pure core: data and a `now` in, decisions out; no network, database or queue."""
