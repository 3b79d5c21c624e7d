"""The rule language: which alerts a rule matches and the guarded playbook it runs.

Independent of the actions (``remediations``) and of the service
(``receiver``): the loader checks action names and params through the
:class:`ActionCatalog` protocol the receiver hands it.
"""

from rules.alert import Alert, fingerprint_of
from rules.duration import parse_duration
from rules.index import RuleSet
from rules.loader import DEFAULT_RULES_DIR, load_rules, load_rules_text
from rules.matchers import Matcher, parse_matcher
from rules.schema import ActionCatalog, ActionStep, BlastRadius, Guards, RateLimit, Rule, Verify
from rules.template import (
    Template,
    TemplateError,
    TemplateSyntaxError,
    compile_params,
    render_params,
    sample_params,
)
from rules.yamlnodes import Problem, RuleLoadError

__all__ = [
    "DEFAULT_RULES_DIR",
    "ActionCatalog",
    "ActionStep",
    "Alert",
    "BlastRadius",
    "Guards",
    "Matcher",
    "Problem",
    "RateLimit",
    "Rule",
    "RuleLoadError",
    "RuleSet",
    "Template",
    "TemplateError",
    "TemplateSyntaxError",
    "Verify",
    "compile_params",
    "fingerprint_of",
    "load_rules",
    "load_rules_text",
    "parse_duration",
    "parse_matcher",
    "render_params",
    "sample_params",
]
