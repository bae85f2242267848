"""[n] markers in a reply become links only for sources that were really cited."""

from ui.message_view import link_markers


def test_markers_of_cited_sources_become_links():
    html = '<p>The gateway timed out [1], see also [7] and <a href="x[1]">y</a></p>'
    out = link_markers(html, {1, 2})
    assert '<a href="cite:1" class="cite">[1]</a>' in out
    assert "[7]" in out and 'href="cite:7"' not in out   # not a source of this reply
    assert 'href="x[1]"' in out                           # inside a tag: untouched


def test_no_citations_leaves_the_text_alone():
    assert link_markers("<p>[1]</p>", set()) == "<p>[1]</p>"
