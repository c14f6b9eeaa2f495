"""The run lock: exactly one execution per output location, even when started in the same instant."""

import json
import multiprocessing
import threading

import boto3
import pytest
from moto import mock_aws

from labelloop import locks

BUCKET = "labelloop-locks"


def _contend(uri, name, barrier, results, release):
    barrier.wait()
    try:
        locks.acquire(uri, name)
        results.put("won")
    except locks.RunInProgressError:
        results.put("refused")
    release.wait(30)  # the winner stays alive while the others try


@pytest.mark.parametrize("same_name", [True, False], ids=["same-second-name", "distinct-names"])
def test_processes_started_together_get_one_lock(tmp_path, same_name):
    # The CLI named executions to the second: two runs started in the same second shared a name,
    # and each took the other's lock for its own. Names or not, one wins and the rest are refused.
    uri = str(tmp_path / "config" / "lock.json")
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, results, release = ctx.Barrier(n), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_contend, args=(uri, "job-20261129T020000" if same_name else f"job-{i}",
                                               barrier, results, release)) for i in range(n)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=30) for _ in procs)
    release.set()
    for p in procs:
        p.join(10)
    assert outcomes == ["refused"] * (n - 1) + ["won"]


@pytest.fixture()
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions")
        role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        machine = sfn.create_state_machine(
            name="loop", roleArn=role,
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        )["stateMachineArn"]
        yield lambda name: sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"], sfn


def test_second_bootstrap_in_the_same_lambda_sandbox_asks_step_functions(aws, monkeypatch):
    # On Lambda a warm sandbox runs the next execution's Bootstrap with the same host and PID:
    # those prove nothing, Step Functions is asked, and a running holder keeps its lock.
    start, sfn = aws
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "labelloop-Bootstrap")
    uri = f"s3://{BUCKET}/out/config/lock.json"
    first = start("first")
    locks.acquire(uri, "first", first)
    with pytest.raises(locks.RunInProgressError, match="'first' .* is using this output location"):
        locks.acquire(uri, "second", start("second"))
    # Once the holder is no longer running, its lock is stale and the next execution takes it.
    sfn.stop_execution(executionArn=first)
    locks.acquire(uri, "third", start("third"))
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key="out/config/lock.json")["Body"].read()
    assert json.loads(body)["Execution"] == "third"


def test_s3_executions_started_together_get_one_lock(aws, monkeypatch):
    # S3 evaluates a conditional write atomically; moto checks the condition and then stores the
    # object in two steps, so under threads it lets two writers through. Give moto S3's guarantee
    # (one PutObject at a time) and see that the lock's own logic lets exactly one execution win.
    from moto.s3.responses import S3Response

    put, one_at_a_time = S3Response.put_object, threading.Lock()

    def atomic_put(self):
        with one_at_a_time:
            return put(self)

    monkeypatch.setattr(S3Response, "put_object", atomic_put)
    start, _ = aws
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "labelloop-Bootstrap")
    uri = f"s3://{BUCKET}/out/config/lock.json"
    n = 12
    arns = [start(f"e{i}") for i in range(n)]
    barrier, outcomes = threading.Barrier(n), []

    def contend(i):
        barrier.wait()
        try:
            locks.acquire(uri, f"e{i}", arns[i])
            outcomes.append("won")
        except locks.RunInProgressError:
            outcomes.append("refused")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused"] * (n - 1) + ["won"]


def test_a_retried_bootstrap_of_the_holder_takes_its_lock_again(aws, monkeypatch):
    start, _ = aws
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "labelloop-Bootstrap")
    uri = f"s3://{BUCKET}/out/config/lock.json"
    arn = start("only")
    locks.acquire(uri, "only", arn)
    locks.acquire(uri, "only", arn)  # the ASL's Retry runs Bootstrap again in the same execution
    locks.release(uri, "only")
    assert not boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents")


def test_local_engine_execution_in_this_process_is_alive(tmp_path):
    uri = str(tmp_path / "lock.json")
    with locks.running_here("first"):
        locks.acquire(uri, "first")
        with pytest.raises(locks.RunInProgressError):
            locks.acquire(uri, "second")
    # It ended without releasing (a failed step): the next execution in this process resumes.
    locks.acquire(uri, "second")
