"""Runs inside the grading sandbox: the student's answer cells, one forked process per case.

This file is copied into the sandbox and run as ``python -I -B runner.py JOB BUILD``; it imports
nothing from lenet_core itself (only the student build that the answers import). It reads
``JOB/job.json`` and ``JOB/inputs.npz``, executes the teacher's ``prelude``, then for each case forks
a child that drops to an unprivileged user, sends its stdout and stderr to /dev/null, executes the
answer cells of the case's submission (a job holds one, or for the tests several), calls the
function and writes one frame to a pipe: a JSON header and an
``.npz`` of the arrays it returned. The parent never runs student code; it forwards each frame to
stdout as ``(case index, length, frame)``, kills a case that runs out of time, and after every case
kills every process the case left behind. (Run as root, the parent keeps the sandbox's root, without
capabilities but to switch user; each case runs as ``nobody``, which cannot signal the parent.)
"""

import io
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
import warnings

import numpy as np

NOBODY = 65534


def drop_privileges():
    if os.getuid() == 0:                # the grader ran the sandbox as root: become nobody
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def decode(tree, arrays, build_model):
    if isinstance(tree, list):
        return [decode(t, arrays, build_model) for t in tree]
    if isinstance(tree, dict):
        if "__array__" in tree:
            return arrays[tree["__array__"]].copy()
        if "__tuple__" in tree:
            return tuple(decode(t, arrays, build_model) for t in tree["__tuple__"])
        if "__model__" in tree:
            return build_model(tree["__model__"], decode(tree["params"], arrays, build_model), tree["dtype"])
        return {k: decode(v, arrays, build_model) for k, v in tree["__dict__"].items()}
    return tree


def encode(obj, arrays, depth=0):
    if depth > 20:
        raise ValueError("the result is nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        obj = np.asarray(obj)
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):            # a torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            return {"__object__": f"an array of dtype {obj.dtype}"}
        arrays.append(np.ascontiguousarray(obj))
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(o, arrays, depth + 1) for o in obj]}
    if isinstance(obj, list):
        return [encode(o, arrays, depth + 1) for o in obj]
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return {"__dict__": {k: encode(v, arrays, depth + 1) for k, v in obj.items()}}
    return {"__object__": type(obj).__name__}


def build_model(kind, params, dtype):
    if kind == "LeNet5":
        from lenet_core.model import LeNet5
        model = LeNet5(dtype=np.dtype(dtype))
        model.load_state_dict(params)
        return model
    import torch
    from lenet_core.twin import TorchLeNet5, torch_name
    module = TorchLeNet5().to(getattr(torch, dtype))
    with torch.no_grad():
        for name, value in params.items():
            module.get_parameter(torch_name(name)).copy_(torch.from_numpy(value))
    return module


# post-processing steps a case may ask for: they turn the objects a student returns into arrays
def torch_logits(module, x):
    import torch
    if not isinstance(module, torch.nn.Module):
        return {"type": type(module).__name__}
    dtype = next(module.parameters()).dtype
    with torch.no_grad():
        out = module(torch.from_numpy(x).to(dtype)).double()
    return {"type": "Module", "logits": out}


def scratch_logits(model, x):
    if not hasattr(model, "forward") or not hasattr(model, "dtype"):
        return {"type": type(model).__name__}
    return {"type": "Sequential", "logits": np.asarray(model.forward(x.astype(model.dtype)), np.float64)}


def state_dict(model):
    if not hasattr(model, "state_dict"):
        return {"type": type(model).__name__}
    return {"type": "Sequential", "state": dict(model.state_dict())}


def model_and_history(result):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return {"type": type(result).__name__}
    model, history = result
    state = model.state_dict() if hasattr(model, "state_dict") else None
    return {"type": "tuple", "state": state, "history": dict(history) if hasattr(history, "keys") else history}


THEN = {"torch_logits": torch_logits, "scratch_logits": scratch_logits, "model_and_history": model_and_history,
        "state_dict": state_dict}


def describe(e):
    text = f"{type(e).__name__}: {str(e).strip()}" if str(e).strip() else type(e).__name__
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith("<answer cell")]
    if frames:
        text += f" (in {frames[-1].name}, line {frames[-1].lineno})"
    return text


def magic_free(source):
    """IPython lines (``%timeit``, ``!pip``) are commented out: the answers are plain Python here."""
    return "\n".join("# " + line if line.lstrip()[:1] in ("%", "!") else line for line in source.splitlines())


def run_case(job, case, arrays, prelude):
    namespace = dict(prelude)
    cell_errors = []
    for name, source in job["submissions"][case["submission"]]:
        try:
            exec(compile(magic_free(source), f"<answer cell {name}>", "exec"), namespace)
        except BaseException as e:          # noqa: BLE001 (the student's error, reported)
            if isinstance(e, SystemExit):
                cell_errors.append(f"answer cell {name} called exit()")
            else:
                cell_errors.append(f"answer cell {name} raised {describe(e)}")
    if case["function"].startswith("="):          # a value the answer cells define, not a function
        name = case["function"][1:]
        if name not in namespace:
            why = f"{name} is not defined"
            return {"error": why + (f" ({'; '.join(cell_errors)})" if cell_errors else "")}, []
        out = []
        try:
            return {"result": encode(namespace[name], out)}, out
        except Exception as e:              # noqa: BLE001
            return {"error": f"{name} could not be sent back: {describe(e)}"}, []
    fn = namespace.get(case["function"])
    if not callable(fn):
        why = f"{case['function']} is not defined"
        return {"error": why + (f" ({'; '.join(cell_errors)})" if cell_errors else "")}, []
    args = decode(case["args"], arrays, build_model)
    for i, a in enumerate(args):            # {"__lambda__": expression, "of": j}: f() reading args[j] as x
        if isinstance(a, dict) and "__lambda__" in a:
            args[i] = eval(f"lambda: {a['__lambda__']}", {"np": np, "x": args[a["of"]]})
    before = {i: a.copy() for i, a in enumerate(args) if isinstance(a, np.ndarray)}
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
        warnings.simplefilter("always")
        try:
            result = fn(*args)
            if case.get("then") == "and_args":
                result = (result, [a for a in args if isinstance(a, np.ndarray)])
            elif case.get("then"):
                result = THEN[case["then"]](result, *decode(case["then_args"], arrays, build_model))
            error = None
        except SystemExit:
            result, error = None, "your function called exit()"
        except BaseException as e:          # noqa: BLE001
            result, error = None, f"your function raised {describe(e)}"
    seen = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen and len(seen) < 5:
            seen.append(text[:300])
    changed = [name for i, name in case["unchanged"] if i in before and not (
        args[i].shape == before[i].shape and np.array_equal(args[i], before[i], equal_nan=True))]
    header = {"warnings": seen, "changed": changed}
    out_arrays = []
    if error is not None:
        header["error"] = error
    else:
        try:
            header["result"] = encode(result, out_arrays)
        except Exception as e:              # noqa: BLE001
            header["error"] = f"the result could not be sent back: {describe(e)}"
            out_arrays = []
    return header, out_arrays


def frame(header, arrays):
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    head = json.dumps(header).encode()
    return struct.pack(">I", len(head)) + head + buffer.getvalue()


def child(job, case, arrays, prelude, w):
    os.setpgid(0, 0)
    drop_privileges()           # the parent stays out of reach: a case cannot signal it
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    limit = job["limits"]["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 1))
    try:
        payload = frame(*run_case(job, case, arrays, prelude))
    except BaseException as e:              # noqa: BLE001
        payload = frame({"error": f"the case could not run: {type(e).__name__}: {e}"[:500]}, [])
    try:
        os.write(w, struct.pack(">Q", len(payload)))
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view):]
    finally:
        os._exit(0)


def collect(r, pid, deadline, cap):
    """Read one child's frame from pipe ``r``: the frame bytes, or a reason it is missing."""
    data = b""
    need = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, "timeout"
        ready, _, _ = select.select([r], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            data += chunk
            if need is None and len(data) >= 8:
                need = struct.unpack(">Q", data[:8])[0]
                if need > cap:
                    return None, "too large"
            if need is not None and len(data) >= 8 + need:
                return data[8:8 + need], None
        else:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = -1
                ready, _, _ = select.select([r], [], [], 0.2)
                if not ready:
                    break
    return None, "ended"


def main():
    job_dir, build = sys.argv[1], sys.argv[2]
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    with np.load(os.path.join(job_dir, "inputs.npz"), allow_pickle=False) as data:
        arrays = {int(k.split("_")[1]): data[k] for k in data.files}
    sys.path.insert(0, build)
    sys.dont_write_bytecode = True
    os.chdir("/tmp")
    prelude = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if job.get("torch"):            # imported once here, not again in every case's process
            import torch  # noqa: F401
        exec(compile(job["prelude"], "<prelude>", "exec"), prelude)
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    limits = job["limits"]
    timed_out = set()           # a function that ran out of time gets less time on its later cases
    for index, case in enumerate(job["cases"]):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.close(out.fileno())
            child(job, case, arrays, prelude, w)
        os.close(w)
        function = (case["submission"], case["function"])
        seconds = limits["retry_seconds"] if function in timed_out else limits["case_seconds"]
        payload, why = collect(r, pid, time.monotonic() + seconds, limits["result_bytes"])
        os.close(r)
        if why == "timeout":
            timed_out.add(function)
        try:
            os.kill(-1, signal.SIGKILL)     # every process but this one and the sandbox's init: nothing lingers
        except OSError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        if payload is None:
            payload = frame({"missing": why}, [])
        out.write(struct.pack(">II", index, len(payload)) + payload)
        out.flush()


if __name__ == "__main__":
    main()
