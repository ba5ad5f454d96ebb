"""The local stack behind `hack/stack`: PostgreSQL, Redis, Kafka and a Kubernetes control plane
on 127.0.0.1 (usage: cli.py). Standard library only: it runs on the system's python3, before the
project's virtualenv exists.

    common.py      paths, the error every step raises, output
    ports.py       the EVENTFLEET_*_PORT variables, free ports and who holds a taken one
    processes.py   the processes the stack owns (pid files) and its preparation steps
    component.py   what every component shares: start, reuse, repair, stop, status
    postgres.py, redis.py, kafka.py, kubernetes.py   one per component
    cli.py         the commands: up, status, env, down, reset

The hack/ scripts import it as `fleetstack` (Python puts hack/ on their path).
"""
