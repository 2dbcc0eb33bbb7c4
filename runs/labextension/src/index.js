// labdeck in JupyterLab: "Share read-only link…" on notebooks in the file browser, and a
// "Shares" side panel with "Shared with me" and "My shares" (revoke). The server side is
// labdeck.runs.lab_shares (this server's /labdeck/shares, which snapshots the notebook into the
// person's S3 home and asks the viewer service to share that read-only snapshot).
import { ILabShell } from '@jupyterlab/application';
import { Dialog, showDialog, showErrorMessage, Clipboard, ICommandPalette } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ServerConnection } from '@jupyterlab/services';
import { URLExt } from '@jupyterlab/coreutils';
import { linkIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const CMD_SHARE = 'labdeck:share';
const CMD_PANEL = 'labdeck:shares';
const PANEL_ID = 'labdeck-shares';

async function api(method, path, body) {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'labdeck/shares', path || '');
  const init = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  const resp = await ServerConnection.makeRequest(url, init, settings);
  if (resp.status === 204) {
    return null;
  }
  let data = {};
  try {
    data = await resp.json();
  } catch (e) {
    data = {};
  }
  if (!resp.ok) {
    throw new Error(data.message || `HTTP ${resp.status}`);
  }
  return data;
}

function absolute(share) {
  return new URL(share.url, window.location.origin).href;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => {
    if (k === 'text') {
      node.textContent = v;
    } else {
      node.setAttribute(k, v);
    }
  });
  children.forEach(c => node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c));
  return node;
}

class ShareForm extends Widget {
  constructor(path) {
    super({ node: el('div', { class: 'labdeck-share-form' }) });
    const n = this.node;
    n.appendChild(el('p', { text: `A read-only snapshot of ${path} as it is now. Later edits are not shared, and nobody gets access to your server.` }));
    this.kind = el('select', { class: 'labdeck-share-kind', 'aria-label': 'Share with' },
      el('option', { value: 'user', text: 'a user' }),
      el('option', { value: 'group', text: 'a group' }),
      el('option', { value: 'everyone', text: 'everyone signed in to this hub' }));
    this.name = el('input', { class: 'labdeck-share-name jp-mod-styled', placeholder: 'user or group name', 'aria-label': 'Name' });
    this.expiry = el('select', { class: 'labdeck-share-expiry', 'aria-label': 'Expires' },
      el('option', { value: '', text: 'never expires' }),
      el('option', { value: '1', text: 'expires in 1 day' }),
      el('option', { value: '7', text: 'expires in 7 days' }),
      el('option', { value: '30', text: 'expires in 30 days' }));
    this.kind.addEventListener('change', () => {
      this.name.style.display = this.kind.value === 'everyone' ? 'none' : '';
    });
    n.appendChild(el('label', {}, 'Share with ', this.kind));
    n.appendChild(this.name);
    n.appendChild(el('label', {}, 'Link ', this.expiry));
  }

  getValue() {
    const body = {};
    if (this.kind.value === 'everyone') {
      body.everyone = true;
    } else {
      body[this.kind.value] = this.name.value.trim();
    }
    if (this.expiry.value) {
      body.expires = Date.now() / 1000 + Number(this.expiry.value) * 86400;
    }
    return body;
  }
}

function linkBody(share) {
  const link = absolute(share);
  const input = el('input', { class: 'labdeck-share-link jp-mod-styled', readonly: 'readonly', value: link });
  const copy = el('button', { class: 'jp-mod-styled jp-mod-accept labdeck-copy-link', text: 'Copy link' });
  copy.addEventListener('click', () => {
    Clipboard.copyToSystem(link);
    copy.textContent = 'Copied';
  });
  const who = share.kind === 'everyone' ? 'everyone signed in to this hub' : `${share.kind} ${share.grantee}`;
  const expires = share.expires_at ? ` until ${share.expires_at}` : '';
  return new Widget({ node: el('div', { class: 'labdeck-share-result' }, el('p', { text: `Shared with ${who}${expires}.` }), input, copy) });
}

class SharesPanel extends Widget {
  constructor() {
    super({ node: el('div', { class: 'labdeck-shares-panel' }) });
    this.id = PANEL_ID;
    this.title.icon = linkIcon;
    this.title.caption = 'Shares: shared with me, my shares';
    this.addClass('jp-SidePanel');
  }

  onAfterShow() {
    this.refresh();
  }

  onAfterAttach() {
    this.refresh();
  }

  async refresh() {
    const n = this.node;
    n.textContent = '';
    const reload = el('button', { class: 'jp-mod-styled labdeck-shares-reload', text: 'Refresh' });
    reload.addEventListener('click', () => this.refresh());
    n.appendChild(el('h2', { text: 'Shared with me' }));
    const incoming = el('ul', { class: 'labdeck-shared-with-me' });
    n.appendChild(incoming);
    n.appendChild(el('h2', { text: 'My shares' }));
    const mine = el('ul', { class: 'labdeck-my-shares' });
    n.appendChild(mine);
    n.appendChild(reload);
    try {
      const [toMe, own] = await Promise.all([api('GET', '?to=me'), api('GET', '')]);
      if (!toMe.shares.length) {
        incoming.appendChild(el('li', { class: 'labdeck-empty', text: 'Nothing shared with you yet.' }));
      }
      toMe.shares.forEach(s => {
        const a = el('a', { href: absolute(s), target: '_blank', rel: 'noopener', class: 'labdeck-share-open', text: s.path.split('/').pop() });
        incoming.appendChild(el('li', { 'data-share-id': s.id }, a, ` from ${s.owner}`));
      });
      if (!own.shares.length) {
        mine.appendChild(el('li', { class: 'labdeck-empty', text: 'You have not shared anything.' }));
      }
      own.shares.forEach(s => {
        const who = s.kind === 'everyone' ? 'everyone' : `${s.kind} ${s.grantee}`;
        const revoke = el('button', { class: 'jp-mod-styled jp-mod-warn labdeck-revoke', text: 'Revoke' });
        revoke.addEventListener('click', async () => {
          try {
            await api('DELETE', s.id);
          } catch (e) {
            await showErrorMessage('Could not revoke the link', e.message);
          }
          this.refresh();
        });
        const state = s.state && s.state !== 'active' ? ` (${s.state})` : '';
        mine.appendChild(el('li', { 'data-share-id': s.id },
          el('a', { href: absolute(s), target: '_blank', rel: 'noopener', text: s.path.split('/').pop() }),
          ` with ${who}${state} `, revoke));
      });
    } catch (e) {
      n.appendChild(el('p', { class: 'labdeck-error', text: `Shares are unavailable: ${e.message}` }));
    }
  }
}

const plugin = {
  id: '@labdeck/lab:shares',
  description: 'Share read-only links to notebooks and run outputs (labdeck viewer).',
  autoStart: true,
  requires: [IFileBrowserFactory, ILabShell],
  optional: [ICommandPalette],
  activate: (app, factory, shell, palette) => {
    const panel = new SharesPanel();
    shell.add(panel, 'left', { rank: 900 });

    app.commands.addCommand(CMD_SHARE, {
      label: 'Share read-only link…',
      caption: 'Share a read-only snapshot of this notebook through the labdeck viewer',
      icon: linkIcon,
      isVisible: () => {
        const item = factory.tracker.currentWidget && factory.tracker.currentWidget.selectedItems().next();
        const model = item && !item.done ? item.value : item;
        return !!(model && model.path && model.path.endsWith('.ipynb'));
      },
      execute: async () => {
        const it = factory.tracker.currentWidget.selectedItems().next();
        const model = it && it.value !== undefined ? it.value : it;
        const form = new ShareForm(model.path);
        const result = await showDialog({
          title: 'Share read-only link',
          body: form,
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Share' })]
        });
        if (!result.button.accept) {
          return;
        }
        try {
          const share = await api('POST', '', { path: model.path, ...result.value });
          await showDialog({ title: 'Read-only link', body: linkBody(share), buttons: [Dialog.okButton({ label: 'Done' })] });
          panel.refresh();
        } catch (e) {
          await showErrorMessage('Could not share', e.message);
        }
      }
    });
    app.commands.addCommand(CMD_PANEL, {
      label: 'Shared with me / My shares',
      execute: () => shell.activateById(PANEL_ID)
    });
    app.contextMenu.addItem({ command: CMD_SHARE, selector: '.jp-DirListing-item[data-isdir="false"]', rank: 11 });
    if (palette) {
      palette.addItem({ command: CMD_PANEL, category: 'labdeck' });
    }
  }
};

export default plugin;
