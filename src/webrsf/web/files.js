// rcslab chat: files (GSMA RCC.07 file transfer via HTTP, through the gateway). Loaded
// beside app.js, whose globals (session, api, report, addMessage, setStatus, ...) it uses.
//
//   POST FileTransfer?to=PEER&name=NAME        the file as the body (XHR, for its progress)
//   POST Group/{id}/FileTransfer?name=NAME     the same to a group
//   GET  FileTransfer/{fileId}[/Thumbnail]     a file offered to us (or sent by us), with the
//                                              bearer token: fetched into a blob URL, so no
//                                              secret ever goes in a URL
// A received file comes as a message with a `file` object (messageNotification and
// Chat/Media for 1-1, chatMessageNotification in a group): {file_id, name, size,
// content_type, url, thumbnail: {url, size, content_type} | null}.
'use strict';

const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];

function fileUrl(file, thumbnail) {
  const base = `/webrsf/v1/${encodeURIComponent(session.user)}/FileTransfer/${encodeURIComponent(file.file_id)}`;
  return thumbnail ? `${base}/Thumbnail` : base;
}

function sizeText(n) {
  if (n == null) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// A gateway file as a blob URL (the request carries the token in its header).
async function fileBlobUrl(file, thumbnail) {
  const res = await fetch(fileUrl(file, thumbnail), { headers: { Authorization: `Bearer ${session.token}` } });
  if (!res.ok) {
    let err = {};
    try { err = await res.json(); } catch { /* not JSON */ }
    throw new Error(`GET ${thumbnail ? 'thumbnail' : 'file'} ${file.name}: ${res.status} ${err.detail || ''}`.trim());
  }
  return URL.createObjectURL(await res.blob());
}

// Fills a message's text element with the file: thumbnail (or the local preview while it is
// sent), the name as a download link, the size, and a progress bar while uploading.
function renderFile(msg, el) {
  const f = msg.file;
  el.replaceChildren();
  el.classList.add('file');
  const fig = document.createElement('figure');
  fig.className = 'file-card';
  fig.dataset.testid = 'file';
  // What the file-info says, once the gateway answered (a thumbnail made for an image).
  fig.dataset.thumbnail = f.file_id ? (f.thumbnail ? 'yes' : 'no') : 'pending';
  if (f.local || f.thumbnail) {
    const img = document.createElement('img');
    img.className = 'thumb';
    img.dataset.testid = 'file-thumbnail';
    img.alt = `Thumbnail of ${f.name}`;
    if (f.local) img.src = f.local;
    else fileBlobUrl(f, true).then((u) => { img.src = u; }).catch(report);
    fig.append(img);
  }
  const cap = document.createElement('figcaption');
  const link = document.createElement('a');
  link.className = 'file-name';
  link.dataset.testid = 'file-download';
  link.textContent = f.name;
  link.href = '#';
  link.title = `Download ${f.name}`;
  link.addEventListener('click', (e) => {
    e.preventDefault();
    const now = msg.file; // the gateway's once the upload is through
    if (!now.file_id) return; // still on its way
    fileBlobUrl(now, false).then((u) => {
      const a = document.createElement('a');
      a.href = u;
      a.download = now.name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(u), 60000);
    }).catch(report);
  });
  const size = document.createElement('span');
  size.className = 'file-size';
  size.dataset.testid = 'file-size';
  size.textContent = ` (${sizeText(f.size)})`;
  cap.append(link, size);
  fig.append(cap);
  if (msg.progress != null && msg.progress < 100) {
    const bar = document.createElement('progress');
    bar.dataset.testid = 'file-progress';
    bar.max = 100;
    bar.value = msg.progress;
    msg.progressEl = bar;
    fig.append(bar);
  }
  el.append(fig);
}

function setProgress(msg, pct) {
  msg.progress = pct;
  if (!msg.progressEl) return;
  msg.progressEl.value = pct;
  if (pct >= 100) { msg.progressEl.remove(); msg.progressEl = null; }
}

// One upload with its progress; resolves to the gateway's JSON answer.
function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/webrsf/v1/${encodeURIComponent(session.user)}${path}`);
    xhr.setRequestHeader('Authorization', `Bearer ${session.token}`);
    if (file.type) xhr.setRequestHeader('Content-Type', file.type);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(Math.floor((e.loaded * 100) / e.total)); };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 401) { logout('Your session has ended: please log in again.'); reject(new Unauthorized('401')); return; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Error(`Sending ${file.name}: ${xhr.status} ${body.error || ''} ${body.detail || ''}`.trim()));
    };
    xhr.onerror = () => reject(new Error(`Sending ${file.name}: the connection failed`));
    xhr.send(file);
  });
}

function localFile(file) {
  return {
    name: file.name, size: file.size, content_type: file.type, thumbnail: null,
    local: IMAGE_TYPES.includes(file.type) ? URL.createObjectURL(file) : null,
  };
}

// A file to the open 1-1 conversation.
async function sendFile(conv, file) {
  const msg = addMessage(conv, {
    direction: 'out', sender: session.user, text: file.name, status: 'sending',
    datetime: new Date().toISOString(), file: localFile(file), progress: 0,
  });
  try {
    const q = `?to=${encodeURIComponent(conv.peer)}&name=${encodeURIComponent(file.name)}`;
    const r = await upload(`/FileTransfer${q}`, file, (p) => setProgress(msg, p));
    setProgress(msg, 100);
    msg.file = { ...r.file, local: msg.file.local };
    renderFile(msg, msg.el.querySelector('.text'));
    if (!conv.id || conv.state === 'closed') {
      conv.state = 'active';
      setInstance(conv, r.instance_id || lastSegment(r.instance));
    }
    msg.message_id = r.message_id;
    byMessageId.set(r.message_id, msg);
    setStatus(msg, 'sent');
    for (const s of earlyStatus.get(r.message_id) || []) setStatus(msg, s);
    earlyStatus.delete(r.message_id);
  } catch (e) {
    setProgress(msg, 100);
    setStatus(msg, 'failed');
    report(e);
  }
  renderConversations();
}

// A file to the open group.
async function sendGroupFile(g, file) {
  const msg = addGroupMessage(g, {
    direction: 'out', sender: session.user, text: file.name, status: 'sending',
    datetime: new Date().toISOString(), file: localFile(file), progress: 0,
  });
  try {
    const q = `?name=${encodeURIComponent(file.name)}`;
    const r = await upload(`/Group/${encodeURIComponent(g.id)}/FileTransfer${q}`, file, (p) => setProgress(msg, p));
    setProgress(msg, 100);
    msg.file = { ...r.file, local: msg.file.local };
    renderFile(msg, msg.el.querySelector('.text'));
    msg.message_id = r.message_id;
    g.byId.set(r.message_id, msg);
    if ((RANK[msg.status] ?? -1) < RANK.sent) msg.status = 'sent';
    for (const d of earlyGroupStatus.get(r.message_id) || []) applyGroupStatus(msg, d);
    earlyGroupStatus.delete(r.message_id);
  } catch (e) {
    setProgress(msg, 100);
    msg.status = 'failed';
    report(e);
  }
  updateGroupMessage(msg);
}

document.addEventListener('DOMContentLoaded', () => {
  $('attach').addEventListener('click', () => $('attach-input').click());
  $('attach-input').addEventListener('change', (e) => {
    const files = [...e.target.files];
    e.target.value = '';
    if (!current) { report(new Error('Open a conversation first.')); return; }
    for (const f of files) sendFile(current, f);
  });
  $('group-attach').addEventListener('click', () => $('group-attach-input').click());
  $('group-attach-input').addEventListener('change', (e) => {
    const files = [...e.target.files];
    e.target.value = '';
    if (!currentGroup) return;
    for (const f of files) sendGroupFile(currentGroup, f);
  });
});
