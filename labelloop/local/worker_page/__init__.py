"""Real people label locally: a worker page served from this machine.

`PeopleWorkforce` is the local binding for Ground Truth labeling jobs when people, not
simulated annotators, answer. `run_labeling_job(params)` takes the CreateLabelingJob request
the state machine sends, serves the batch on a small HTTP server bound to the loopback
interface (werkzeug's threaded WSGI server), blocks until every item has its answers, then
writes Ground Truth's output manifest exactly as `SimulatedWorkforce` does and returns the
DescribeLabelingJob-shaped answer.

- Access: a random token in the page URL (`http://127.0.0.1:PORT/?token=...`, handed to
  `on_ready`). Every request must carry it (query `token` or header `X-Labelloop-Token`);
  what else a request must pass is in `app.py`.
- The page: static HTML, CSS and JS shipped in `static/`; one item is drawn, and its answer
  collected, by the widget of the job's task type (`widgets.widget_for`).
- Workers: a `worker` query parameter names the person; without one the page sets a cookie
  with a random id, so two browsers are two workers. Items are handed out with a lease per
  worker (the task time limit of the request), so two people never get the same item unless
  the job wants several answers per item (NumberOfHumanWorkersPerDataObject): then an item
  waits for that many answers from different workers and is consolidated by majority vote,
  with the same vote and confidence as `SimulatedWorkforce`.
- The model's guess (`labelloop-guess` on an input line) is shown as a suggestion, except on
  validation items (`labelloop-role: validation`): those reach people blind.
- Durability: every answer (and undo) is appended to
  `<S3OutputPath>/<job>/annotations/worker-response/answers.jsonl` and fsync'd before the page
  hears "ok". A closed tab loses nothing, and a new `PeopleWorkforce` given the same job
  rebuilds its state from that journal and continues where it stopped. A run resumed after a
  crash asks for the same batch under a new job name: the answers in the journals of unfinished
  jobs beside it count for the same items.
- Bad requests (no or wrong token, unknown job or item, label outside the categories, an
  answer replayed or for an item this worker may not answer) get a 4xx with a JSON
  `{"error": ...}` and change nothing.
- Images: only the regular file an item's line names, as it was when the job started (see
  `files.py`).
"""

from labelloop.local.worker_page.app import MAX_BODY, TOKEN_HEADER, WORKER_COOKIE, WorkerPageApp
from labelloop.local.worker_page.errors import PageError
from labelloop.local.worker_page.job import GUESS_KEY, JOURNAL_NAME, ROLE_KEY
from labelloop.local.worker_page.people import PeopleWorkforce
from labelloop.local.worker_page.widgets import widget_for

__all__ = [
    "GUESS_KEY", "JOURNAL_NAME", "MAX_BODY", "ROLE_KEY", "TOKEN_HEADER", "WORKER_COOKIE",
    "PageError", "PeopleWorkforce", "WorkerPageApp", "widget_for",
]
