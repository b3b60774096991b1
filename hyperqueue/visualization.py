"""`visualize_job`: a job's task graph in DOT (upstream's `hyperqueue.visualization`; needs the
optional `pydot` package: `pip install hyperqueue[visualization]`)."""

from __future__ import annotations


class MissingPackageException(BaseException):
    """An optional package the called function needs is not installed."""

    def __init__(self, package: str):
        super().__init__(package)
        self.package = package

    def __str__(self):
        return (f"Unable to import `{self.package}`. You have to install the `{self.package}` "
                "package.")


def visualize_job(job, path) -> None:
    """Writes the task graph of `job` to `path` in the DOT format: a node per task (its
    label), an edge from each dependency to its dependant."""
    try:
        import pydot
    except ImportError:
        raise MissingPackageException("pydot") from None

    graph = pydot.Dot("job", graph_type="digraph")
    nodes = {}
    for task in job.tasks:  # dependencies come first: they are created first
        node = pydot.Node(f"t{task.task_id}", label=_quote(task.label))
        graph.add_node(node)
        nodes[task.task_id] = node
    for task in job.tasks:
        for dep in task.dependencies:
            graph.add_edge(pydot.Edge(nodes[dep.task_id].get_name(),
                                      nodes[task.task_id].get_name()))
    graph.write(str(path))


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'
