"""A ray.cluster_utils.Cluster in a process of its own, for tests/test_ray_cluster.py.

Ray stays out of the pytest process: the threads its clients start there would deadlock a later
test's fork (lm-eval's bootstrap uses a process pool). Starts a head (1 CPU, no GPU) and N nodes
of 4 CPUs and 1 GPU each, prints the head's address, then answers commands on stdin, one a line:
`remove NODE_ID` (the node's raylet and workers killed, as a crash), `add` (one more node); each
is answered `ok`. End of input shuts the cluster down.

    python tests/ray_cluster_host.py NODES
"""

from __future__ import annotations

import sys


def main(nodes: int) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        cluster.add_node(num_cpus=1, include_dashboard=False)  # the head
        for _ in range(nodes):
            cluster.add_node(num_cpus=4, num_gpus=1)
        print(cluster.address, flush=True)
        for line in sys.stdin:
            command, *args = line.split()
            if command == "remove":
                node, = [n for n in cluster.worker_nodes if n.node_id == args[0]]
                cluster.remove_node(node, allow_graceful=False)
            elif command == "add":
                cluster.add_node(num_cpus=4, num_gpus=1)
            print("ok", flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]))
