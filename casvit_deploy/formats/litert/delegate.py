"""What XNNPACK takes of a `.tflite` file: after `allocate_tensors` the interpreter lists the
model's ops and then one DELEGATE node per partition; an op lies inside a partition when it
is on a path from the partition's inputs to its outputs (probe: /work/scratch/litert)."""

from __future__ import annotations

from collections import Counter


def _covered(ops: list[dict], delegates: list[dict]) -> set[int]:
    producer = {t: op["index"] for op in ops for t in op["outputs"]}
    by_index = {op["index"]: op for op in ops}
    covered: set[int] = set()
    for node in delegates:
        stop = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            op = producer.get(tensor)
            if tensor in stop or op is None or op in covered:
                continue
            covered.add(op)
            stack += [int(t) for t in by_index[op]["inputs"] if t >= 0]
    return covered


def partitions(interpreter) -> dict:
    """{"delegate", "partitions", "ops", "outside": {op: count}} for an allocated interpreter."""
    details = interpreter._get_ops_details()  # private, but the only view of the execution plan
    delegates = [op for op in details if op["op_name"] == "DELEGATE"]
    ops = [op for op in details if op["op_name"] != "DELEGATE"]
    covered = _covered(ops, delegates)
    outside = Counter(op["op_name"] for op in ops if op["index"] not in covered)
    return {"delegate": "XNNPACK (ai-edge-litert's default CPU delegate)", "partitions": len(delegates),
            "ops": len(ops), "outside": dict(sorted(outside.items()))}
