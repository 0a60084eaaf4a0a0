"""Re-checks: the fetch, the egress guard, and the fingerprints a body is streamed into."""
