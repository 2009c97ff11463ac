"""The task's entry point: `FluxBootstrap@1`'s Python side, started by the Node launcher in the agent's job.

The order of the first steps is the point of this module:

1. every secret the job handed over (the job token, the secret inputs, the used service connections' credentials)
   is registered with the agent (`##vso[task.setsecret]`) before any other line is written;
2. then one plain line says what runs, before anything heavy is imported (the step shows life at once);
3. the variables that carry secrets (`ENDPOINT_AUTH*`, `SECRET_*`, `SECUREFILE_TICKET_*`, `INPUT_*`,
   `SYSTEM_ACCESSTOKEN`) leave `os.environ`, so no git, kubectl or kustomize started later inherits them; the
   task keeps its own copy;
4. the inputs, the cluster connection and the action; the end is always a summary, the output variables and
   `##vso[task.complete]`, and exit code 0 (a non-zero exit only adds the agent's generic "exit code" error).

A user's mistake is one line (an issue on the run) and a Failed result, naming the task's inputs where the shared
code names the CLI's flags (`inputs.error_in_input_terms`; warnings and details through the reporter's `rewrite`);
a bug is one line too (its traceback only with System.Debug, masked), also when it happens while the summary and
outputs are written (`conclude`); a cancel (SIGTERM, SIGINT) removes the run's files and exits 143/130. The
summary file's name has a random part, so two steps of one job keep one each. A stdout closed by its reader (the
agent or a pipe went away) ends the run quietly with exit code 1: the run's files removed, no traceback.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

from flux_azdo import __version__
from flux_azdo.pipeline.agent import JOB_TOKEN_VARIABLE

if TYPE_CHECKING:
    from flux_azdo.errors import UserError
    from flux_azdo.pipeline.actions import Outcome
    from flux_azdo.pipeline.agent import AgentContext
    from flux_azdo.pipeline.inputs import TaskInputs
    from flux_azdo.pipeline.masking import Masker
    from flux_azdo.pipeline.reporter import PipelineReporter

#: Variables that hold secrets or could (inputs): removed from os.environ before any child process starts.
SCRUBBED_PREFIXES = ("ENDPOINT_AUTH", "SECRET_", "SECUREFILE_TICKET_", "INPUT_", "VSTS_TASKVARIABLE_")
SCRUBBED_NAMES = ("SYSTEM_ACCESSTOKEN",)
#: User names a token may travel with in HTTP Basic (git, the SDK, scripts), for the masker's `user:token` forms.
TOKEN_USERS = ("pat", "git", "x-access-token", "PersonalAccessToken", "AzureDevOps", "build")
_TOKEN_INPUTS = ("gitPat", "clusterPat")
_CONNECTION_INPUTS = ("kubernetesServiceConnection", "azureSubscription")


class _Terminated(BaseException):
    """SIGTERM as an exception, so every `finally` runs (the run's folder with the secure file is removed)."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.exit_code = 128 + number
        self.signal_name = signal.Signals(number).name


def main(environ: Mapping[str, str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the task with `environ` (default os.environ) writing to `stdout`; the exit code for the launcher."""
    env = dict(os.environ if environ is None else environ)
    out = sys.stdout if stdout is None else stdout
    reconfigure = getattr(out, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")
    previous = _terminate_with_exception()
    try:
        return _run(env, out)
    except BrokenPipeError:  # the reader went away; `_run` has removed the run's files on the way out
        _discard_output(out)
        return 1
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _discard_output(out: TextIO) -> None:
    """Python's advice for a closed stdout (the signal module's note on SIGPIPE): point the stream's descriptor at
    devnull, so the flush at exit does not fail again and print a traceback nobody asked for."""
    try:
        descriptor = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's StringIO): nothing flushes it at exit
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


def register_secrets(env: Mapping[str, str], masker: Masker) -> None:
    """Step 1: the job token, the secret inputs, secure file tickets, the used service connections' credentials."""
    from flux_azdo.pipeline.endpoints import endpoint_secrets
    from flux_azdo.pipeline.inputs import raw_input, secret_values

    job_token = env.get(JOB_TOKEN_VARIABLE, "").strip()
    if job_token:
        masker.register(job_token, usernames=TOKEN_USERS, name="the job token")
    tokens = {raw_input(env, name) for name in _TOKEN_INPUTS}
    for value in secret_values(env):
        usernames = TOKEN_USERS if value in tokens else ()
        masker.register(value, usernames=usernames, name="a secret input")
    for name, value in env.items():  # a ticket downloads its secure file: the agent masks them as well
        if name.upper().startswith("SECUREFILE_TICKET_") and len(value.strip()) >= 8:
            masker.register(value.strip(), name="a secure file's ticket")
    for name in _CONNECTION_INPUTS:
        for endpoint_id in raw_input(env, name).split(","):
            if endpoint_id.strip():
                for secret in endpoint_secrets(env, endpoint_id):
                    masker.register(secret, name="a service connection's credential")


def scrub_environment(environ: MutableMapping[str, str]) -> None:
    """Step 3: children never see the job's secrets (task-lib removes the same variables for its tools)."""
    for name in list(environ):
        upper = name.upper()
        if upper.startswith(SCRUBBED_PREFIXES) or upper in SCRUBBED_NAMES:
            del environ[name]


def _run(env: dict[str, str], out: TextIO) -> int:
    from flux_azdo.errors import UserError
    from flux_azdo.pipeline.inputs import in_input_terms, raw_input
    from flux_azdo.pipeline.masking import Masker
    from flux_azdo.pipeline.reporter import PipelineReporter

    masker = Masker(out)
    register_secrets(env, masker)  # a secret too short to mask is a warning by name, written before anything else
    action = raw_input(env, "action") or "bootstrap"
    # The shared code's warnings, failures and details name the CLI's flags and commands; the task's, its inputs.
    reporter = PipelineReporter(out, masker, total_steps=_total_steps(action), rewrite=in_input_terms)
    reporter.line(f"flux-azdo {__version__}: {action}")
    scrub_environment(os.environ)
    folder = None
    agent: AgentContext | None = None
    inputs: TaskInputs | None = None
    try:
        outcome: Callable[[], Outcome]
        try:
            from flux_azdo.git.folders import PrivateFolder
            from flux_azdo.pipeline.agent import agent_context
            from flux_azdo.pipeline.inputs import read_inputs

            agent = agent_context(env)
            inputs = read_inputs(env, sources=agent.sources_directory)
            folder = PrivateFolder("flux-azdo-", agent.temp_directory)
            outcome = _given(_act(inputs, agent, env, folder.path, reporter))
        except UserError as error:
            outcome = _failure(error, action, inputs, agent, reporter)
        except (KeyboardInterrupt, _Terminated):
            raise
        except Exception as error:  # a bug: one line, without the exception's text (it may hold anything)
            outcome = _crash(error, action, agent, reporter)
        conclude(outcome, action, agent, reporter, debug=_debug(env))
        return 0
    except KeyboardInterrupt:
        reporter.close()
        reporter.line("✗ interrupted (SIGINT): the run's temporary files were removed")
        return 130
    except _Terminated as stop:
        reporter.close()
        reporter.line(f"✗ stopped by {stop.signal_name}: the run's temporary files were removed")
        return stop.exit_code
    finally:
        if folder is not None:
            folder.remove()


def _total_steps(action: str) -> int:
    from flux_azdo.pipeline.actions import TOTAL_STEPS

    return TOTAL_STEPS.get(action, 8)


def _act(
    inputs: TaskInputs, agent: AgentContext, env: Mapping[str, str], folder: Any, reporter: PipelineReporter
) -> Outcome:
    from flux_azdo.pipeline.actions import RunFiles, run_action
    from flux_azdo.pipeline.connections import connect_cluster

    def register(secret: str) -> None:
        reporter.masker.register(secret, name="a credential of the cluster connection or a secure file")

    reporter.action(f"connecting to the cluster ({inputs.connection_type})")
    cluster = connect_cluster(inputs, agent, env, folder, register)
    reporter.success(f"using {cluster.description}")
    return run_action(inputs, agent, cluster, RunFiles(folder, env, register), reporter)


def _repository_link(inputs: TaskInputs | None, agent: AgentContext | None) -> str | None:
    """The repository's https URL for commit links in a failure summary, when it is known."""
    if inputs is None or agent is None or not inputs.repository_url:
        return None
    from flux_azdo.errors import UserError
    from flux_azdo.pipeline.actions import https_url, repository_url

    try:
        return https_url(repository_url(inputs.repository_url, agent), inputs.allow_insecure_http)
    except UserError:
        return None


def _failure(
    error: UserError, action: str, inputs: TaskInputs | None, agent: AgentContext | None, reporter: PipelineReporter
) -> Callable[[], Outcome]:
    """A user's mistake, in the task's words (its inputs, never the CLI's flags): one line now, the summary later."""
    from flux_azdo.pipeline.actions import failure_outcome
    from flux_azdo.pipeline.inputs import error_in_input_terms

    error = error_in_input_terms(error)
    reporter.failure(str(error))
    url = _repository_link(inputs, agent)
    return lambda: failure_outcome(action, error, reporter, url=url)


def _given(outcome: Outcome) -> Callable[[], Outcome]:
    return lambda: outcome


def _debug(env: Mapping[str, str]) -> bool:
    return env.get("SYSTEM_DEBUG", "").strip().lower() == "true"


def _crash(
    error: Exception, action: str, agent: AgentContext | None, reporter: PipelineReporter
) -> Callable[[], Outcome]:
    from flux_azdo.pipeline.actions import Outcome
    from flux_azdo.pipeline.summary import failure_summary

    message, fix = _unexpected(error)
    reporter.failure(f"{message}: {fix}")
    if agent is not None and agent.debug:
        reporter.close()
        reporter.detail(_traceback(error))

    def outcome() -> Outcome:
        summary = failure_summary(action, message, fix, warnings=tuple(reporter.warnings), mask=reporter.masker.mask)
        return Outcome("Failed", "failed", message, summary, {"result": "failed"})

    return outcome


def _unexpected(error: BaseException) -> tuple[str, str]:
    """A bug's one line: where it happened, never the exception's text (it may hold anything)."""
    where = error.__traceback__
    while where is not None and where.tb_next is not None:
        where = where.tb_next
    place = f" in {os.path.basename(where.tb_frame.f_code.co_filename)}:{where.tb_lineno}" if where else ""
    message = f"flux-azdo {__version__} stopped on an unexpected {type(error).__name__}{place}"
    return message, "run the job again with System.Debug set to true for the details, and report it with them"


def _traceback(error: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(error))


def conclude(
    outcome: Callable[[], Outcome],
    action: str,
    agent: AgentContext | None,
    reporter: PipelineReporter,
    *,
    debug: bool = False,
) -> None:
    """Build the outcome and finish with it; whatever goes wrong there (a summary builder, an output value with a
    line break, the summary file) still ends the step with one masked error line and a Failed result."""
    try:
        _finish(outcome(), action, agent, reporter)
    except (KeyboardInterrupt, _Terminated):
        raise
    except Exception as error:  # the last resort: the step must still complete
        from flux_azdo.pipeline.commands import command, neutralise

        message, fix = _unexpected(error)
        mask = reporter.masker.mask
        lines = [command("task.logissue", mask(f"{message}: {fix}"), type="error")]
        if debug:
            lines += [mask(neutralise(mask(line))) for line in _traceback(error).splitlines()]
        lines.append(command("task.complete", mask(message), result="Failed"))
        reporter.stream.write("".join(line + "\n" for line in lines))
        reporter.stream.flush()


def _finish(outcome: Outcome, action: str, agent: AgentContext | None, reporter: PipelineReporter) -> None:
    """Output variables, the summary attachment (kept: the agent uploads it after the step), the result."""
    reporter.close()
    for name, value in outcome.outputs.items():
        reporter.set_output(name, value)
    if agent is not None:
        from flux_azdo.pipeline.inputs import ACTIONS

        # The action's name is the user's text until it is checked: only a known one goes into a file name. The
        # random part keeps two steps of one job (two bootstraps) from overwriting each other's summary.
        name = action if action in ACTIONS else "task"
        path = agent.temp_directory / f"flux-azdo-summary-{name}-{secrets.token_hex(4)}.md"
        try:
            reporter.write_summary(path, outcome.summary)
        except OSError as error:
            reporter.warning(f"the run summary could not be written to {path} ({error.strerror})")
    reporter.complete(outcome.task_result, outcome.message)


def _terminate_with_exception() -> dict[int, Any]:
    """A pipeline cancel sends SIGTERM (then SIGKILL): raise so that the run's files are removed first."""

    def terminate(number: int, _frame: object) -> None:
        raise _Terminated(number)

    previous: dict[int, Any] = {}
    for number in (signal.SIGTERM,):
        try:
            previous[number] = signal.signal(number, terminate)
        except ValueError:  # not the main thread: leave signals alone
            break
    return previous
