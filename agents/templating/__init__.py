"""The protocol-agnostic template language: request processors in YAML that turn a decoded
request into SessionSv1 calls and the engine's answer into a reply (docs/templates.md).

Agents hand ``process`` a RequestTree over their decoded message and a ReplyTree to fill,
then encode the ReplyTree with their codec.
"""

from agents.templating.applying import apply_fields
from agents.templating.errors import TemplateError
from agents.templating.fields import Field
from agents.templating.loader import Processor, Templates, load_templates
from agents.templating.paths import Path, parse_path
from agents.templating.processing import EngineCall, Outcome, plan, process
from agents.templating.trees import DictTree, ReplyTree, RequestTree
from agents.templating.values import Value, parse_value

__all__ = [
    "DictTree",
    "EngineCall",
    "Field",
    "Outcome",
    "Path",
    "Processor",
    "ReplyTree",
    "RequestTree",
    "TemplateError",
    "Templates",
    "Value",
    "apply_fields",
    "load_templates",
    "parse_path",
    "parse_value",
    "plan",
    "process",
]
