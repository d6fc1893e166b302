"""Data: GLUE/SuperGLUE seqio tasks in the paper's format, users' files, batches.

Importing this package registers the built-in tasks with seqio (imports TensorFlow).
"""

from jaxprompt.data.formats import TASK_FORMATS
from jaxprompt.data.pipeline import (Lengths, TruncationReport, eval_batches, pad_batch,
                                     train_batches, truncation_report)
from jaxprompt.data.readers import DataError
from jaxprompt.data.tasks import (DEFAULT_VOCABULARY, TEXT_TASKS, TextTask, check_vocabulary,
                                  get_task, register_builtin_tasks, register_seqio_task,
                                  set_data_dir, vocabulary)
from jaxprompt.data.user_files import from_files

register_builtin_tasks()

__all__ = ["DEFAULT_VOCABULARY", "DataError", "Lengths", "TASK_FORMATS", "TEXT_TASKS", "TextTask",
           "TruncationReport", "check_vocabulary", "eval_batches", "from_files", "get_task",
           "pad_batch", "register_builtin_tasks", "register_seqio_task", "set_data_dir",
           "train_batches", "truncation_report", "vocabulary"]
