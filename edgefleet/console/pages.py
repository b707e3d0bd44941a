"""The console's HTML: plain server-rendered pages; ``static/console.js`` adds uploads, live purges and
refreshing charts. No inline scripts or styles, so the Content-Security-Policy can forbid them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from urllib.parse import quote, urlencode

from edgefleet.charts import Chart, render_figure

from .origin_client import ObjectDetails
from .purges import PurgeStatus, since
from .stats import EdgeNumbers

NONE = "\N{EN DASH}"
"""Shown for a number nobody measured yet."""

NAV = (("assets", "/assets", "Assets"), ("purges", "/purges", "Purges"), ("fleet", "/fleet", "Fleet"))


def layout(title: str, body: str, *, csrf: str | None, active: str = "") -> str:
    nav = ""
    if csrf is not None:
        current = ' aria-current="page"'
        links = "".join(f'<a href="{href}"{current if name == active else ""}>{label}</a>' for name, href, label in NAV)
        nav = (
            f'<header><nav aria-label="Main"><span class="brand">edgefleet</span>{links}'
            f'<form method="post" action="/logout" class="signout"><input type="hidden" name="csrf" '
            f'value="{escape(csrf)}"><button type="submit">Sign out</button></form></nav></header>'
        )
    meta = f'<meta name="csrf-token" content="{escape(csrf)}">' if csrf is not None else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)} · edgefleet console</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script>'
        '</head><body><a class="skip" href="#main">Skip to content</a>'
        f'{nav}<main id="main"><h1>{escape(title)}</h1>{body}</main></body></html>'
    )


def login_page(form_nonce: str, message: str = "") -> str:
    alert = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    body = (
        f"{alert}<p>Sign in with your fleet's console token (the <code>console-token</code> key of the "
        "fleet's tokens Secret, or the one <code>edgefleet up</code> printed).</p>"
        '<form method="post" action="/login" class="stack" autocomplete="off">'
        f'<input type="hidden" name="csrf" value="{escape(form_nonce)}">'
        '<label for="token">Console token</label>'
        '<input id="token" name="token" type="password" required autocomplete="current-password" spellcheck="false">'
        '<button type="submit">Sign in</button></form>'
    )
    return layout("Sign in", body, csrf=None)


def _size(value: float | None) -> str:
    if value is None:
        return NONE
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= factor:
            return f"{value / factor:.1f} {unit}".replace(".0 ", " ")
    return f"{value:.0f} B"


def _key_url(key: str) -> str:
    return quote(key, safe="/")


def asset_rows(objects: Sequence[dict[str, object]], details: dict[str, ObjectDetails]) -> str:
    if not objects:
        return '<p class="empty">No assets match.</p>'
    rows = []
    for obj in objects:
        key = str(obj["key"])
        info = details.get(key)
        tags = " ".join(f'<span class="tag">{escape(t)}</span>' for t in (info.tags if info else ()))
        kind = escape(info.content_type) if info else ""
        thumb = (
            f'<img class="thumb" src="/thumb/{_key_url(key)}" alt="" width="80" height="80">'
            if kind.startswith("image/")
            else '<span class="thumb none" aria-hidden="true"></span>'
        )
        rows.append(
            f'<tr data-key="{escape(key)}"><td>{thumb}</td>'
            f'<td><a href="/assets/object/{_key_url(key)}">{escape(key)}</a></td>'
            f"<td>{_size(float(str(obj['size'])))}</td><td>{kind}</td><td>{tags}</td>"
            f"<td>{escape(str(obj['last_modified']))}</td></tr>"
        )
    return (
        '<table class="assets"><caption class="sr-only">Assets</caption><thead><tr><th scope="col">'
        '<span class="sr-only">Thumbnail</span></th><th scope="col">Key</th><th scope="col">Size</th>'
        '<th scope="col">Type</th><th scope="col">Tags</th><th scope="col">Last modified</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def asset_list(objects: Sequence[dict[str, object]], details: dict[str, ObjectDetails], truncated: bool,
               error: str = "") -> str:  # fmt: skip
    more = '<p class="note">More assets match: narrow the prefix to see them.</p>' if truncated else ""
    alert = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return f'<div id="asset-list" aria-live="polite">{alert}{asset_rows(objects, details)}{more}</div>'


def assets_page(csrf: str, prefix: str, q: str, tag: str, listing: str, max_upload: int) -> str:
    query = escape(urlencode({"prefix": prefix, "q": q, "tag": tag}))
    body = (
        '<form method="get" action="/assets" class="search" role="search">'
        f'<div><label for="prefix">Prefix</label><input id="prefix" name="prefix" value="{escape(prefix)}" '
        'placeholder="products/"></div>'
        f'<div><label for="q">Key contains</label><input id="q" name="q" value="{escape(q)}"></div>'
        f'<div><label for="tag">Tag</label><input id="tag" name="tag" value="{escape(tag)}" placeholder="sku-123">'
        '</div><button type="submit">Search</button></form>'
        '<section aria-labelledby="upload-heading" class="upload"><h2 id="upload-heading">Upload</h2>'
        f'<div id="dropzone" class="dropzone" data-max="{max_upload}">'
        '<p id="drop-help">Drop images here, or choose them. Each file is stored under the folder below, '
        f"with its own progress bar. Largest file: {_size(max_upload)}.</p>"
        '<label for="upload-files">Files to upload</label>'
        '<input id="upload-files" type="file" multiple '
        'accept="image/jpeg,image/png,image/webp,image/avif,image/gif,.css,.js,.woff,.woff2,.json"></div>'
        '<div class="row"><div><label for="upload-prefix">Folder (key prefix)</label>'
        f'<input id="upload-prefix" value="{escape(prefix)}" placeholder="products/"></div>'
        '<div><label for="upload-tags">Tags (separated by spaces)</label>'
        '<input id="upload-tags" placeholder="sku-123 cat-shoes"></div></div>'
        '<div><input id="upload-replace" type="checkbox"><label for="upload-replace" class="inline">'
        "Replace files that already exist</label></div>"
        '<ul id="upload-list" class="uploads" aria-label="Uploads"></ul></section>'
        f'<section aria-labelledby="list-heading"><h2 id="list-heading">Assets</h2>'
        f'<div id="asset-list-source" data-src="/assets/list?{query}"></div>{listing}</section>'
    )
    return layout("Assets", body, csrf=csrf, active="assets")


def object_page(csrf: str, info: ObjectDetails, edge: str, cache: str, widths: Sequence[int],
                formats: Sequence[str]) -> str:  # fmt: skip
    key = info.key
    fields = [
        ("Size", _size(info.size)),
        ("Type", info.content_type),
        ("ETag", info.etag),
        ("Last modified", info.last_modified),
        ("Cache-Control (browsers)", info.cache_control),
        ("CDN-Cache-Control (edges)", info.cdn_cache_control),
        ("Tags", " ".join(info.tags) or "none"),
        ("Owning edge", edge or "unknown"),
        ("Thumbnail (?w=160) at the fleet", cache or "unknown"),
    ]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in fields)
    image = info.content_type.startswith("image/")
    variants = ""
    if image:
        cells = "".join(f"<tr><td>{w} px</td><td><code>/assets/{escape(key)}?w={w}</code></td></tr>" for w in widths)
        variants = (
            '<section aria-labelledby="variants-heading"><h2 id="variants-heading">Variants</h2>'
            f"<p>Made on demand by the origin in {escape(', '.join(formats))}, whichever the browser accepts "
            "first; each width is cached by the edges under the same tags.</p>"
            '<table><thead><tr><th scope="col">Width</th><th scope="col">URL</th></tr></thead>'
            f"<tbody>{cells}</tbody></table></section>"
        )
    preview = f'<img class="preview" src="/thumb/{_key_url(key)}" alt="Preview of {escape(key)}">' if image else ""
    body = (
        f'<p><a href="/assets">← All assets</a></p><div class="object" data-key="{escape(key)}">{preview}'
        f'<dl class="facts">{rows}</dl></div>{variants}'
        '<section aria-labelledby="change-heading"><h2 id="change-heading">Replace or delete</h2>'
        '<div class="row"><div><label for="replace-file">New file for this key</label>'
        '<input id="replace-file" type="file"></div></div>'
        '<button type="button" id="replace-button">Replace</button> '
        '<button type="button" id="delete-button" class="danger">Delete this asset</button>'
        '<p id="object-status" role="status" aria-live="polite"></p></section>'
    )
    return layout(key, body, csrf=csrf, active="assets")


def purge_rows(statuses: Sequence[PurgeStatus]) -> str:
    if not statuses:
        return '<p class="empty">No purges yet.</p>'
    rows = []
    for s in statuses:
        acked = f"{len(s.acks)}/{s.expected}" if s.expected is not None else f"{len(s.acks)}"
        if s.duration_ms is None:
            duration = "waiting"
        elif s.expected is None:
            duration = f"{s.duration_ms:.0f} ms (slowest so far)"
        else:
            duration = f"{s.duration_ms:.0f} ms"
        rows.append(
            f'<tr data-entry="{escape(s.entry_id)}"><td>{escape(s.description)}</td><td>{escape(s.issuer or "?")}</td>'
            f'<td><time datetime="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.issued_at))}">'
            f"{escape(since(s.issued_at))}</time></td><td>{acked}</td><td>{duration}</td></tr>"
        )
    return (
        '<div class="scroll"><table class="purges"><thead><tr><th scope="col">What</th><th scope="col">By</th>'
        '<th scope="col">When</th>'
        '<th scope="col">Edges acknowledged</th><th scope="col">Took</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def purges_page(csrf: str, recent: Sequence[PurgeStatus], bus_ready: bool) -> str:
    disabled = "" if bus_ready else " disabled"
    warning = "" if bus_ready else '<p class="error" role="alert">No purge bus is configured for this console.</p>'
    body = (
        f'{warning}<form id="purge-form" class="stack"><fieldset><legend>Purge by</legend>'
        '<div class="choices">'
        '<label><input type="radio" name="kind" value="path" checked> Path (every variant of an asset)</label>'
        '<label><input type="radio" name="kind" value="prefix"> Prefix (everything under a folder)</label>'
        '<label><input type="radio" name="kind" value="tag"> Tag (surrogate key)</label>'
        '<label><input type="radio" name="kind" value="all"> Everything</label></div></fieldset>'
        '<label for="purge-targets">Paths, prefixes or tags, one per line</label>'
        '<textarea id="purge-targets" name="targets" rows="3" placeholder="products/shoe.jpg"></textarea>'
        '<div><input type="checkbox" id="purge-soft" name="soft"><label for="purge-soft" class="inline">'
        "Soft purge: mark stale and revalidate, instead of removing</label></div>"
        f'<button type="submit"{disabled}>Purge</button></form>'
        '<section aria-labelledby="live-heading"><h2 id="live-heading">Acknowledgements</h2>'
        '<div id="purge-live" aria-live="polite"><p class="empty">Issue a purge to watch each edge '
        "confirm it.</p></div></section>"
        '<section aria-labelledby="recent-heading"><h2 id="recent-heading">Recent purges</h2>'
        f'<div id="recent-purges" data-src="/purges/recent">{purge_rows(recent)}</div></section>'
    )
    return layout("Purges", body, csrf=csrf, active="purges")


def _ratio(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def _number(value: float | None, unit: str) -> str:
    return NONE if value is None else f"{value:,.1f} {unit}"


def fleet_panel(edges: Sequence[EdgeNumbers], charts: Sequence[Chart], source: str) -> str:
    if edges:
        rows = "".join(
            f'<tr><th scope="row">{escape(e.name)}</th><td>{_ratio(e.hit_ratio)}</td><td>{_number(e.p95_ms, "ms")}'
            f"</td><td>{_number(e.requests_per_second, 'req/s')}</td>"
            f"<td>{_size(e.memory_bytes)} of {_size(e.memory_capacity)}</td>"
            f"<td>{_size(e.disk_bytes)} of {_size(e.disk_capacity)}</td></tr>"
            for e in edges
        )
        table = (
            '<div class="scroll"><table class="edges"><thead><tr><th scope="col">Edge</th>'
            '<th scope="col">Hit ratio</th><th scope="col">p95 latency</th><th scope="col">Requests</th>'
            '<th scope="col">Memory</th><th scope="col">Disk</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    else:
        table = '<p class="empty">No edge has reported yet.</p>'
    figures = "".join(render_figure(c) for c in charts)
    return (
        f'<div id="fleet-panel" data-src="/fleet/panel"><h2>Edges</h2>{table}'
        f'<h2>Last hour</h2><p class="note">{escape(source)}</p><div class="charts">{figures}</div></div>'
    )


def fleet_page(csrf: str, panel: str) -> str:
    return layout("Fleet", panel, csrf=csrf, active="fleet")
