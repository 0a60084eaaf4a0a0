"""URL to hosting: DNS, origin AS, RDAP network and contacts, rate limits, the tracer."""
