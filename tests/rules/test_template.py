"""The template language: references only, checked at parse time, strict at render time."""

from __future__ import annotations

import pytest

from rules import Template, TemplateError, TemplateSyntaxError, compile_params, render_params
from rules.template import sample_params
from tests.rules.support import make_alert


def test_renders_every_reference_kind() -> None:
    alert = make_alert(
        "ServiceDown", labels={"container": "web-1"}, annotations={"hook": "http://h/r"}
    )
    template = Template.parse(
        "{{labels.container}} {{ annotations.hook }} {{ alert.name }}"
        " {{alert.fingerprint}} {{ alert.source }} {{  alert.status  }}"
    )
    assert template.render(alert) == (
        f"web-1 http://h/r ServiceDown {alert.fingerprint} alertmanager firing"
    )
    assert not template.is_literal


def test_literal_text_is_kept_verbatim() -> None:
    template = Template.parse("docker: {plain} }} braces")
    assert template.is_literal
    assert template.render(make_alert()) == "docker: {plain} }} braces"
    assert template.source == "docker: {plain} }} braces"


def test_adjacent_references_and_edges() -> None:
    alert = make_alert(labels={"a": "1", "b": "2"})
    assert Template.parse("{{labels.a}}{{labels.b}}").render(alert) == "12"
    assert Template.parse("x{{labels.a}}").render(alert) == "x1"
    assert Template.parse("").render(alert) == ""


def test_missing_label_is_an_error_not_an_empty_string() -> None:
    template = Template.parse("docker:{{ labels.container }}")
    with pytest.raises(TemplateError, match="label 'container' is missing"):
        template.render(make_alert(labels={"job": "web"}))


def test_missing_annotation_is_an_error() -> None:
    with pytest.raises(TemplateError, match="annotation 'runbook' is missing"):
        Template.parse("{{ annotations.runbook }}").render(make_alert())


def test_an_empty_label_is_missing() -> None:
    # Prometheus treats a label with an empty value as absent: so does the template.
    with pytest.raises(TemplateError, match="label 'zone' is missing"):
        Template.parse("[{{ labels.zone }}]").render(make_alert(labels={"zone": ""}))


@pytest.mark.parametrize(
    "text",
    [
        "{{ labels.container | upper }}",
        "{{ labels['container'] }}",
        "{{ labels }}",
        "{{ alert.labels }}",
        "{{ alert.starts_at }}",
        "{{ env.HOME }}",
        "{{ __import__('os').system('id') }}",
        "{{ labels.a + labels.b }}",
        "{{ labels.with-dash }}",
        "{{ }}",
    ],
)
def test_anything_but_a_reference_is_rejected_at_parse_time(text: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="unsupported expression"):
        Template.parse(text)


def test_unclosed_braces_are_rejected() -> None:
    with pytest.raises(TemplateSyntaxError, match=r"unclosed '\{\{' at offset 4"):
        Template.parse("pod-{{ labels.pod")


def test_syntax_error_is_a_value_error() -> None:
    assert issubclass(TemplateSyntaxError, ValueError)
    assert not issubclass(TemplateError, ValueError)


def test_compile_and_render_params_deeply() -> None:
    compiled = compile_params(
        {
            "url": "http://{{ labels.instance }}/warm",
            "json": {"text": "{{ alert.name }} on {{ labels.instance }}", "n": 3, "ok": True},
            "expect_status": [200, 204],
            "tags": ["{{ labels.job }}", None, 1.5],
        }
    )
    alert = make_alert("LowCacheHitRate", labels={"instance": "web-1:80", "job": "web"})
    assert render_params(compiled, alert) == {
        "url": "http://web-1:80/warm",
        "json": {"text": "LowCacheHitRate on web-1:80", "n": 3, "ok": True},
        "expect_status": [200, 204],
        "tags": ["web", None, 1.5],
    }


def test_compile_params_names_the_path_of_a_bad_template() -> None:
    with pytest.raises(TemplateSyntaxError, match=r"^params\.json\.text: unsupported"):
        compile_params({"json": {"text": "{{ labels.a | b }}"}})
    with pytest.raises(TemplateSyntaxError, match=r"^params\.tags\[1\]: unclosed"):
        compile_params({"tags": ["ok", "{{ labels.a"]})


def test_render_params_fails_on_a_missing_label() -> None:
    compiled = compile_params({"json": {"pod": "{{ labels.pod }}"}})
    with pytest.raises(TemplateError, match="label 'pod' is missing"):
        render_params(compiled, make_alert())


def test_sample_params_fills_every_reference_with_placeholder() -> None:
    compiled = compile_params(
        {"url": "http://{{ labels.instance }}/x", "json": ["{{ alert.name }}"]}
    )
    assert sample_params(compiled) == {"url": "http://placeholder/x", "json": ["placeholder"]}


def test_templates_compare_by_source() -> None:
    assert Template.parse("{{ labels.a }}") == Template.parse("{{ labels.a }}")
    assert Template.parse("{{ labels.a }}") != Template.parse("{{labels.a}}")
    assert str(Template.parse("x{{ labels.a }}")) == "x{{ labels.a }}"
