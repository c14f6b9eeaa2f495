"""Local binding for SageMaker: training, model and transform jobs run here, in subprocesses.

Each job takes the very request body the state machine sends to SageMaker, lays out the
directories and environment a SageMaker container would see (`/opt/ml/...`, `SM_*`), runs the
project's algorithm code from the same source tarball, and answers with a Describe*-shaped
result. URIs in the requests are local paths (the local engine's output folder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

ACCOUNT = "123456789012"
_LOG_TAIL = 2000


def die_with_parent(parent: int | None = None) -> Any:
    """A `preexec_fn` that makes a job's process die when the process that started it dies.

    A training or transform job killed with its parent (SIGKILL, an OOM kill) would otherwise run
    on, orphaned, writing into a run the next command resumes. Linux only (prctl
    PR_SET_PDEATHSIG); elsewhere None, and the job's own timeout bounds it. Called in a child
    that is already running (a process pool's initializer), with `parent` the pid of the process
    that started it, the returned function ties that child the same way.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)  # loaded here, before the fork, not in the child
    prctl, parent = libc.prctl, parent or os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above: nobody will signal us
            os._exit(1)

    return preexec


class LocalJobError(RuntimeError):
    """A request the local binding cannot serve (e.g. an s3:// URI in a local run)."""


class ResponseLostError(LocalJobError):
    """The job was created, but its Create* answer never arrived (as after a SageMaker 500)."""

    def __init__(self, describe: dict[str, Any]):
        super().__init__(
            "We encountered an internal error. Please try again. "
            "(Service: AmazonSageMaker; Status Code: 500; Error Code: InternalFailure)"
        )
        self.describe = describe


# Create* action -> the request field that names what it creates.
NAME_KEYS = {
    "createTrainingJob": "TrainingJobName",
    "createModel": "ModelName",
    "createTransformJob": "TransformJobName",
    "createLabelingJob": "LabelingJobName",
}


def _local(uri: str, what: str) -> Path:
    if uri.startswith("s3://"):
        raise LocalJobError(f"{what}: the local engine reads local paths, got {uri}")
    return Path(uri)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-_LOG_TAIL:]


def _copy_prefix(uri: str, dest: Path, what: str) -> list[Path]:
    """Copy what an S3Prefix data source names (a file, or every file under a folder) into dest."""
    src = _local(uri, what)
    dest.mkdir(parents=True, exist_ok=True)
    if src.is_file():
        files = [src]
        base = src.parent
    elif src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))
        base = src
    else:
        files, base = [], src
    copied = []
    for f in files:
        target = dest / f.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        copied.append(target)
    return copied


def _extract(tarball: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")


def _decode_hyperparameter(value: str) -> Any:
    # SageMaker's training toolkit JSON-decodes each value and falls back to the raw string.
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return value


@dataclass
class LocalSageMaker:
    """Runs SageMaker jobs for the local engine; one instance per local run."""

    workdir: Path
    region: str = "us-east-1"
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self._model = botocore.session.get_session().get_service_model("sagemaker")

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:{kind}/{name.lower()}"

    def validate(self, operation: str, params: dict[str, Any]) -> None:
        """Check a request against the SageMaker API model, as the real service would."""
        shape = self._model.operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            raise LocalJobError(f"{operation} request is invalid: {report.generate_report()}")

    # ------------------------------------------------------------ training

    def create_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self.validate("CreateTrainingJob", params)
        name = params["TrainingJobName"]
        job_dir = self.workdir / "training" / name
        if job_dir.exists():
            shutil.rmtree(job_dir)  # a retried job starts clean, as a new container would
        ml = job_dir / "opt_ml"
        hps = {k: _decode_hyperparameter(v) for k, v in (params.get("HyperParameters") or {}).items()}
        program = hps.pop("sagemaker_program", None)
        submit = hps.pop("sagemaker_submit_directory", None)
        for key in [k for k in hps if k.startswith("sagemaker_")]:
            hps.pop(key)
        started = _now()
        describe = {
            "TrainingJobName": name,
            "TrainingJobArn": self.arn("training-job", name),
            "AlgorithmSpecification": params["AlgorithmSpecification"],
            "HyperParameters": params.get("HyperParameters", {}),
            "CreationTime": started.isoformat(),
            "TrainingStartTime": started.isoformat(),
        }
        failure = None
        if not program or not submit:
            failure = "HyperParameters need sagemaker_program and sagemaker_submit_directory (script mode)"
        else:
            code = ml / "code"
            _extract(_local(submit, "sagemaker_submit_directory"), code)
            channels = []
            for channel in params.get("InputDataConfig", []):
                cname = channel["ChannelName"]
                _copy_prefix(channel["DataSource"]["S3DataSource"]["S3Uri"], ml / "input" / "data" / cname, cname)
                channels.append(cname)
            config_dir = ml / "input" / "config"
            config_dir.mkdir(parents=True, exist_ok=True)
            (config_dir / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hps.items()}))
            (config_dir / "inputdataconfig.json").write_text(
                json.dumps({c["ChannelName"]: {"ContentType": c.get("ContentType", "")} for c in params.get("InputDataConfig", [])})
            )
            (config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
            for sub in ("model", "output/data"):
                (ml / sub).mkdir(parents=True, exist_ok=True)
            env = self._training_env(ml, channels, hps)
            args = [sys.executable, program]
            for k, v in hps.items():
                args += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
            timeout = params.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
            failure = self._run(args, code, env, job_dir / "logs.txt", timeout, ml / "output" / "failure")
        ended = _now()
        describe["TrainingEndTime"] = ended.isoformat()
        describe["TrainingTimeInSeconds"] = int((ended - started).total_seconds())
        if failure is None:
            output = _local(params["OutputDataConfig"]["S3OutputPath"], "S3OutputPath") / name / "output"
            output.mkdir(parents=True, exist_ok=True)
            artifact = output / "model.tar.gz"
            with tarfile.open(artifact, "w:gz") as tar:
                for item in sorted((ml / "model").iterdir()):
                    tar.add(item, arcname=item.name)
            describe.update(
                TrainingJobStatus="Completed",
                SecondaryStatus="Completed",
                ModelArtifacts={"S3ModelArtifacts": str(artifact)},
                FinalMetricDataList=self._metrics(params, job_dir / "logs.txt"),
            )
        else:
            describe.update(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=failure)
        self._record("training", describe, job_dir / "logs.txt")
        return describe

    def _training_env(self, ml: Path, channels: list[str], hps: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SM_MODEL_DIR=str(ml / "model"),
            SM_INPUT_DIR=str(ml / "input"),
            SM_INPUT_CONFIG_DIR=str(ml / "input" / "config"),
            SM_OUTPUT_DIR=str(ml / "output"),
            SM_OUTPUT_DATA_DIR=str(ml / "output" / "data"),
            SM_OUTPUT_FAILURE=str(ml / "output" / "failure"),
            SM_CHANNELS=json.dumps(channels),
            SM_HPS=json.dumps(hps),
            SM_NUM_CPUS=str(os.cpu_count() or 1),
            SM_NUM_GPUS="0",
            SM_CURRENT_HOST="algo-1",
            SM_HOSTS=json.dumps(["algo-1"]),
            SM_MODULE_DIR=str(ml / "code"),
            PYTHONUNBUFFERED="1",
        )
        for c in channels:
            env[f"SM_CHANNEL_{c.upper()}"] = str(ml / "input" / "data" / c)
        for k, v in hps.items():
            env[f"SM_HP_{k.upper().replace('-', '_')}"] = v if isinstance(v, str) else json.dumps(v)
        return env

    @staticmethod
    def _metrics(params: dict[str, Any], log: Path) -> list[dict[str, Any]]:
        import re

        text = log.read_text(errors="replace") if log.exists() else ""
        out = []
        for definition in params["AlgorithmSpecification"].get("MetricDefinitions", []):
            found = re.findall(definition["Regex"], text)
            if found:
                out.append({"MetricName": definition["Name"], "Value": float(found[-1]), "Timestamp": _now().isoformat()})
        return out

    # ------------------------------------------------------------ models

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        self.validate("CreateModel", params)
        name = params["ModelName"]
        with self._lock:
            if name in self.models:
                # SageMaker refuses a second model of the same name; a retried state sees this too.
                raise LocalJobError(f"Cannot create already existing model {self.arn('model', name)}")
            self.models[name] = params
        return {"ModelArn": self.arn("model", name)}

    # ------------------------------------------------------------ batch transform

    def create_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self.validate("CreateTransformJob", params)
        name = params["TransformJobName"]
        job_dir = self.workdir / "transform" / name
        if job_dir.exists():
            shutil.rmtree(job_dir)
        job_dir.mkdir(parents=True)
        started = _now()
        describe = {
            "TransformJobName": name,
            "TransformJobArn": self.arn("transform-job", name),
            "ModelName": params["ModelName"],
            "TransformInput": params["TransformInput"],
            "TransformOutput": params["TransformOutput"],
            "CreationTime": started.isoformat(),
            "TransformStartTime": started.isoformat(),
        }
        model = self.models.get(params["ModelName"])
        failure = None
        if model is None:
            failure = f"Could not find model {self.arn('model', params['ModelName'])}"
        else:
            container = model["PrimaryContainer"]
            envs = container.get("Environment", {})
            code, model_dir = job_dir / "code", job_dir / "model"
            _extract(_local(envs["SAGEMAKER_SUBMIT_DIRECTORY"], "SAGEMAKER_SUBMIT_DIRECTORY"), code)
            _extract(_local(container["ModelDataUrl"], "ModelDataUrl"), model_dir)
            inputs = _copy_prefix(
                params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"], job_dir / "input", "TransformInput"
            )
            output = _local(params["TransformOutput"]["S3OutputPath"], "S3OutputPath")
            args = [
                sys.executable, "-m", "labelloop.local.batch_transform_host",
                "--code-dir", str(code), "--model-dir", str(model_dir),
                "--program", envs.get("SAGEMAKER_PROGRAM", "inference.py"),
                "--input-dir", str(job_dir / "input"), "--output-dir", str(output),
                "--content-type", params["TransformInput"].get("ContentType", "application/jsonlines"),
                "--accept", params["TransformOutput"].get("Accept", "application/jsonlines"),
                "--max-payload-mb", str(params.get("MaxPayloadInMB", 6)),
                "--batch-strategy", params.get("BatchStrategy", "MultiRecord"),
                "--join-source", params.get("DataProcessing", {}).get("JoinSource", "None"),
            ]
            env = dict(os.environ, PYTHONUNBUFFERED="1", SM_NUM_CPUS=str(os.cpu_count() or 1))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")]))
            if not inputs:
                failure = f"no input objects under {params['TransformInput']['DataSource']['S3DataSource']['S3Uri']}"
            else:
                failure = self._run(args, job_dir, env, job_dir / "logs.txt", 86400, job_dir / "failure")
        ended = _now()
        describe["TransformEndTime"] = ended.isoformat()
        if failure is None:
            describe["TransformJobStatus"] = "Completed"
        else:
            describe.update(TransformJobStatus="Failed", FailureReason=failure)
        self._record("transform", describe, job_dir / "logs.txt")
        return describe

    # ------------------------------------------------------------ common

    def _run(self, args, cwd: Path, env, log: Path, timeout: int, failure_file: Path) -> str | None:
        """Run a job's process; None on success, else the failure reason SageMaker would report."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as handle:
            try:
                proc = subprocess.run(args, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout,
                                      preexec_fn=die_with_parent())
            except subprocess.TimeoutExpired:
                return f"MaxRuntimeExceeded: the job ran longer than {timeout} seconds"
        if proc.returncode == 0:
            return None
        if failure_file.exists() and failure_file.read_text().strip():
            reason = failure_file.read_text().strip()
        else:
            reason = _tail(log).strip().splitlines()[-1:] or ["(no output)"]
            reason = reason[0]
        return f"AlgorithmError: {reason[:900]} (exit code {proc.returncode}; log: {log})"

    def _record(self, kind: str, describe: dict[str, Any], log: Path) -> None:
        with self._lock:
            self.jobs.append({"kind": kind, "describe": describe, "log": str(log), "time": time.time()})
