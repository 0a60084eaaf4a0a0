"""The benchmark harness of issue 11, one module per concern.

    sandbox     the loopback-only network namespace, and the PostgreSQL + Redis of workload 5
    worlds      the simulated internet's networks, host names and URLs for each workload
    stack       one engine run: the simulated servers, `takedown report`, `takedown worker`
    facts       what the engine's database says (cases, notices, checks)
    metrics     peak memory and CPU of processes, the servers' counters, per-host concurrency
    naive       the naive pipeline: the same libraries, one URL at a time
    intake      workloads 1, 3 and 5: a batch of URLs reported, until every first notice
    recheck     workload 2: a re-check pass over open cases due at once
    arrivals    workload 4: reports arriving at a steady rate, report → notice latency
    results     the machine, and RESULTS.md

`benchmarks/run.py` is the command that runs them.
"""
