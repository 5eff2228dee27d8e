"""The inspectors' web form: one server-rendered, mobile-first page (no JavaScript at all).

Authentication: the inspector pastes an `inspector` token into the form's password field once; it
travels in the POST body (never in a URL, never logged) and the answer page keeps it in that field
for the next check. No cookie is ever set, so a page of another site cannot submit with the
inspector's rights (no ambient credential: nothing to forge, so no CSRF token is needed). Pages are
`Cache-Control: no-store`, may not be framed and run no script (Content-Security-Policy).
"""

from __future__ import annotations

import datetime as dt
import email.policy
import html
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from cloud.api.deps import AppState, RoleCheck, State, get_state
from cloud.api.routes.inspections import body_limit, places_of, read_bounded, submit
from cloud.auth import TokenRecord
from cloud.days import SHANGHAI
from cloud.inspections.record import Inspection, InspectionError, InspectionIn
from contract.errors import first_error

router = APIRouter(tags=["inspections"])
MAX_PARTS = 40
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
CONTAINERS = (
    ("wet", "湿垃圾 wet"),
    ("dry", "干垃圾 dry"),
    ("recyclable", "可回收物 recyclable"),
    ("hazardous", "有害垃圾 hazardous"),
)
KINDS = (
    ("area", "居民区 residential area"),
    ("site", "投放点 waste station (WS-…)"),
    ("unit", "单位 unit"),
    ("public_place", "公共场所 public place"),
)
ITEMS = (
    ("labelled", "设施: 分类容器齐全、标识规范 containers present and labelled"),
    ("guidance", "引导: 投放时段有人值守引导 guidance at drop-off times"),
    ("clean", "环境: 投放点周边整洁 clean surroundings"),
    ("records", "台账: 收运记录完整 records kept"),
)


@dataclass
class FormData:
    """The submitted fields (text) and the photo part, if any."""

    fields: dict[str, str] = field(default_factory=dict)
    photo: bytes = b""
    photo_type: str | None = None


class FormProblem(HTTPException):
    """An error answered as the form page with a banner, not as JSON."""

    def __init__(self, status_code: int, detail: str, form: FormData | None = None) -> None:
        super().__init__(status_code, detail=detail)
        self.form = form or FormData()


def parse_form(content_type: str, body: bytes) -> FormData:
    """multipart/form-data (the form, with its photo) or urlencoded fields; bounded part count."""
    out = FormData()
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=MAX_PARTS)
        out.fields = dict(pairs)
        return out
    if not content_type.startswith("multipart/form-data") or not body:
        if body:
            raise FormProblem(422, "send the form as multipart/form-data")
        return out
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise FormProblem(422, "the form body is not multipart/form-data")
    parts = list(msg.iter_parts())
    if len(parts) > MAX_PARTS:
        raise FormProblem(422, f"at most {MAX_PARTS} form fields")
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        if name == "photo":
            if part.get_filename() or data:
                out.photo, out.photo_type = data, part.get_content_type()
        else:
            out.fields[name] = data.decode("utf-8", "replace")
    return out


class FormRoleCheck(RoleCheck):
    """The role check of the form: the token comes from the form's `token` field (or a bearer
    header, for apps); errors come back as the form page."""

    async def __call__(  # type: ignore[override]
        self, request: Request, state: Annotated[AppState, Depends(get_state)]
    ) -> TokenRecord:
        try:
            body = await read_bounded(request, body_limit(state))
        except HTTPException as exc:
            raise FormProblem(exc.status_code, str(exc.detail)) from None
        form = parse_form(request.headers.get("content-type", ""), body)
        request.state.inspection_form = form
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        token = credential.strip() if scheme.lower() == "bearer" else form.fields.get("token")
        try:
            return self.check(request, state, token or None)
        except HTTPException as exc:
            kept = FormData({k: v for k, v in form.fields.items() if k != "token"})
            raise FormProblem(exc.status_code, str(exc.detail), kept) from None


def _checked(form: FormData, name: str) -> bool:
    return form.fields.get(name, "") in ("on", "true", "1", "yes")


def model_of(form: FormData) -> InspectionIn:
    """The JSON model the form's fields stand for (same validation as the JSON route)."""
    f = form.fields
    when = f.get("time", "")
    try:
        parsed = dt.datetime.fromisoformat(when) if when else None
    except ValueError:
        raise InspectionError("time: not a date and time") from None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=SHANGHAI)  # the form's datetime-local is Shanghai time
    containers = [
        {"category": cat, "pure": f[f"c_{cat}"] == "pure"}
        for cat, _ in CONTAINERS
        if f.get(f"c_{cat}") in ("pure", "impure")
    ]
    if not containers:
        raise InspectionError("containers: judge at least one container (纯净 or 不纯)")
    try:
        return InspectionIn.model_validate(
            {
                "time": parsed,
                "place_kind": f.get("place_kind"),
                "place": f.get("place", "").strip(),
                "labelled": _checked(form, "labelled"),
                "containers": containers,
                "guidance": _checked(form, "guidance"),
                "clean": _checked(form, "clean"),
                "records": _checked(form, "records"),
                "score": f.get("score", "").strip(),
                "notes": f.get("notes", ""),
            }
        )
    except ValidationError as exc:
        raise InspectionError(first_error(exc)) from None


def _size(n: int) -> str:
    return f"{n / 1048576:g} MiB" if n >= 1048576 else f"{n // 1024} KiB"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render(
    form: FormData | None = None,
    *,
    error: str = "",
    saved: Inspection | None = None,
    token: str = "",
    photo_limit: int = 2 * 1024 * 1024,
) -> str:
    """The page: a banner (error or saved) and the form, with the fields as submitted."""
    f = (form or FormData()).fields
    now = dt.datetime.now(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    banner = ""
    if error:
        banner = f'<p class="err" role="alert" id="error">错误 Error: {_e(error)}</p>'
    elif saved is not None:
        verdict = "达标 passed" if saved.passed else "不达标 not passed"
        banner = (
            f'<p class="ok" role="status" id="saved">已保存 Saved: <b id="saved-id">{_e(saved.id)}</b> · '
            f"{_e(saved.place.id)} · {_e(verdict)} ({saved.score} / {saved.pass_score})</p>"
        )
        f = {}
    kinds = "".join(
        f'<option value="{v}"{" selected" if f.get("place_kind") == v else ""}>{_e(t)}</option>'
        for v, t in KINDS
    )
    items = "".join(
        f'<label class="box"><input type="checkbox" name="{n}"'
        f"{' checked' if f.get(n) == 'on' else ''}> {_e(t)}</label>"
        for n, t in ITEMS
    )

    def judge(cat: str) -> str:
        sel = f.get(f"c_{cat}", "")
        opts = (("", "无 / 未查 none"), ("pure", "纯净 ≥85% pure"), ("impure", "不纯 <85% impure"))
        return "".join(
            f'<option value="{v}"{" selected" if sel == v else ""}>{_e(t)}</option>'
            for v, t in opts
        )

    containers = "".join(
        f'<label>{_e(t)}<select name="c_{c}">{judge(c)}</select></label>' for c, t in CONTAINERS
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>分类实效检查 Sorting inspection</title>
<style>
body{{font-family:system-ui,"WenQuanYi Micro Hei",sans-serif;margin:0;padding:12px;max-width:560px;
margin:auto;background:#f6f7f5;color:#1d2a1d;font-size:16px}}
h1{{font-size:1.25rem;margin:.2em 0 .6em}}
fieldset{{border:1px solid #c9d3c9;border-radius:8px;margin:0 0 12px;padding:8px 10px;background:#fff}}
legend{{font-weight:600}} label{{display:block;margin:6px 0}}
input,select,textarea,button{{font:inherit;font-size:16px;width:100%;box-sizing:border-box;padding:8px;margin-top:2px}}
input[type=checkbox]{{width:auto;transform:scale(1.3);margin-right:8px}}
.box{{display:flex;align-items:center}}
button{{background:#2e7d32;color:#fff;border:0;border-radius:8px;padding:12px;font-weight:600}}
.err{{background:#fdecea;color:#8a1c12;padding:8px;border-radius:6px}}
.ok{{background:#e8f5e9;color:#1b5e20;padding:8px;border-radius:6px}}
small{{color:#5b665b}}
</style></head><body>
<h1>生活垃圾分类实效检查 Sorting inspection (五有)</h1>
{banner}
<form method="post" action="/inspections/form" enctype="multipart/form-data" autocomplete="off">
<fieldset><legend>检查员令牌 Inspector token</legend>
<label>令牌 Token<input type="password" name="token" id="token" required value="{_e(token)}"
 placeholder="gm_…"></label><small>只需粘贴一次 Paste once; it stays in this page only.</small>
</fieldset>
<fieldset><legend>时间地点 When and where</legend>
<label>检查时间 Time (Shanghai)<input type="datetime-local" name="time" id="time" required
 value="{_e(f.get("time", now))}"></label>
<label>类型 Place type<select name="place_kind" id="place_kind">{kinds}</select></label>
<label>编号 Place id<input type="text" name="place" id="place" required maxlength="40"
 pattern="[A-Za-z0-9][A-Za-z0-9\\-]*" placeholder="A01 / WS-0101 / U-001 / P-001"
 value="{_e(f.get("place", ""))}"></label>
</fieldset>
<fieldset><legend>五有检查项 The checked items</legend>{items}</fieldset>
<fieldset><legend>分类实效: 各桶纯净度 Purity per container (≥85%)</legend>{containers}</fieldset>
<fieldset><legend>评分 Score</legend>
<label>得分 Score (0–100)<input type="number" name="score" id="score" min="0" max="100" required
 inputmode="numeric" value="{_e(f.get("score", ""))}"></label>
<label>备注 Notes <small>(no names or phone numbers 勿填个人信息)</small>
<textarea name="notes" id="notes" rows="3" maxlength="500">{_e(f.get("notes", ""))}</textarea></label>
<label>照片 Photo (JPEG/PNG, ≤ {_size(photo_limit)})<input type="file" name="photo" id="photo"
 accept="image/jpeg,image/png" capture="environment"></label>
</fieldset>
<button type="submit" id="submit">提交 Submit</button>
</form></body></html>
"""


def page(body: str, code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=code, headers=HEADERS)


async def problem_page(_: Request, exc: Exception) -> HTMLResponse:
    """FormProblem -> the form again with the error (the token field is left empty)."""
    assert isinstance(exc, FormProblem)
    return page(render(exc.form, error=str(exc.detail)), exc.status_code)


@router.get("/inspections/form", response_class=HTMLResponse)
def form_page(state: State) -> HTMLResponse:
    """The empty form (public: it holds no data; submitting needs an inspector token)."""
    return page(render(photo_limit=state.settings.inspections.photo_max_bytes))


Form = Annotated[TokenRecord, Depends(FormRoleCheck(("inspector",)))]


@router.post("/inspections/form", response_class=HTMLResponse)
async def form_submit(request: Request, state: State, token: Form) -> HTMLResponse:
    """Record the check; the answer is the form again, with what was saved or what was wrong."""
    form: FormData = request.state.inspection_form
    kept = form.fields.get("token", "")
    limit = state.settings.inspections.photo_max_bytes
    try:
        body = model_of(form)
        live = places_of(state, request)
        rec = await run_in_threadpool(
            submit, state, live, body, form.photo or None, form.photo_type, token.name
        )
    except InspectionError as exc:
        return page(
            render(form, error=str(exc), token=kept, photo_limit=limit),
            status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    return page(render(saved=rec, token=kept, photo_limit=limit), status.HTTP_201_CREATED)
