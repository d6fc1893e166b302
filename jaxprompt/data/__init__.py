"""Data: GLUE/SuperGLUE tasks in the paper's format, users' files, numpy batches.

Nothing here imports TensorFlow: `register_seqio_task` / `register_builtin_tasks` make
jaxprompt's tasks seqio Tasks on demand (pip install 'jaxprompt[data]').
"""

from jaxprompt.data.formats import TASK_FORMATS
from jaxprompt.data.pipeline import (
    Lengths,
    TruncationReport,
    eval_batches,
    pad_batch,
    train_batches,
    truncation_report,
)
from jaxprompt.data.readers import DataError
from jaxprompt.data.tasks import (
    DEFAULT_VOCABULARY,
    TEXT_TASKS,
    TextTask,
    check_vocabulary,
    get_task,
    register_builtin_tasks,
    register_seqio_task,
    set_data_dir,
)
from jaxprompt.data.user_files import from_files
from jaxprompt.data.vocabulary import Vocabulary, vocabulary

__all__ = [
    "DEFAULT_VOCABULARY",
    "DataError",
    "Lengths",
    "TASK_FORMATS",
    "TEXT_TASKS",
    "TextTask",
    "TruncationReport",
    "Vocabulary",
    "check_vocabulary",
    "eval_batches",
    "from_files",
    "get_task",
    "pad_batch",
    "register_builtin_tasks",
    "register_seqio_task",
    "set_data_dir",
    "train_batches",
    "truncation_report",
    "vocabulary",
]
