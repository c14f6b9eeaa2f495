"""Local stand-in for a SageMaker inference container serving one batch transform job.

Runs in its own process, as the container would: imports the algorithm's `inference.py` from
the extracted source dir, calls `model_fn` once, then for each input file splits it by line,
groups records into requests of at most MaxPayloadInMB (BatchStrategy MultiRecord), calls
`input_fn` → `predict_fn` → `output_fn`, and writes `<file>.out`. With JoinSource=Input each
output line is the input record with the prediction under "SageMakerOutput", as SageMaker
joins JSON records.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from labelloop.storage import atomic_file


def _load_program(code_dir: Path, program: str):
    sys.path.insert(0, str(code_dir))
    path = code_dir / program
    if not path.exists():
        raise FileNotFoundError(f"SAGEMAKER_PROGRAM {program} is not in the source dir")
    spec = importlib.util.spec_from_file_location(Path(program).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for fn in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        if not hasattr(module, fn):
            raise AttributeError(f"{program} does not define {fn}")
    return module


def _batches(lines: list[str], max_bytes: int, multi: bool):
    batch: list[str] = []
    size = 0
    for line in lines:
        n = len(line.encode("utf-8")) + 1
        if batch and (not multi or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += n
    if batch:
        yield batch


def transform_file(module, model, src: Path, dst: Path, args) -> int:
    lines = [l for l in src.read_text(encoding="utf-8").splitlines() if l.strip()]
    max_bytes = int(float(args.max_payload_mb) * 1024 * 1024)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dst, "w") as out:
        for batch in _batches(lines, max_bytes, args.batch_strategy == "MultiRecord"):
            body = ("\n".join(batch) + "\n").encode("utf-8")
            data = module.input_fn(body, args.content_type)
            prediction = module.predict_fn(data, model)
            response = module.output_fn(prediction, args.accept)
            if isinstance(response, tuple):  # output_fn may return (body, content_type)
                response = response[0]
            if isinstance(response, bytes):
                response = response.decode("utf-8")
            results = [r for r in str(response).splitlines() if r.strip()]
            if len(results) != len(batch):
                raise ValueError(
                    f"{src.name}: output_fn returned {len(results)} lines for a request of {len(batch)} records"
                )
            for record, result in zip(batch, results):
                if args.join_source == "Input":
                    joined = json.loads(record)
                    joined["SageMakerOutput"] = json.loads(result)
                    out.write(json.dumps(joined, separators=(",", ":")) + "\n")
                else:
                    out.write(result + "\n")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("code-dir", "model-dir", "program", "input-dir", "output-dir", "content-type", "accept",
                 "max-payload-mb", "batch-strategy", "join-source"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)
    failure = Path(args.input_dir).parent / "failure"
    try:
        module = _load_program(Path(args.code_dir), args.program)
        model = module.model_fn(args.model_dir)
        root = Path(args.input_dir)
        total = 0
        for src in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = src.relative_to(root)
            total += transform_file(module, model, src, Path(args.output_dir) / f"{rel}.out", args)
        print(f"transformed {total} records")
        return 0
    except Exception as exc:  # the job fails with the reason, as SageMaker reports it
        failure.write_text(f"{type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    sys.exit(main())
