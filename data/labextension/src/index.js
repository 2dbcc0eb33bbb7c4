// labdeck data in JupyterLab: the person's S3 as a drive with a file browser of its own ("S3" in the
// left sidebar), and a BigQuery panel (datasets and tables with schema and first rows, insert a query
// cell, the person's recent and running queries with Cancel). The server side is labdeck.data
// (this server's /labdeck/s3 and /labdeck/bigquery), which uses the person's own broker credentials.
import { ILabShell } from '@jupyterlab/application';
import { showErrorMessage, ToolbarButton } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser, IFileBrowserFactory, Uploader } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { Drive, ServerConnection } from '@jupyterlab/services';
import { LabIcon, newFolderIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const DRIVE = 'S3';
const BROWSER_ID = 'labdeck-s3';
const PANEL_ID = 'labdeck-bigquery';
const JOBS_REFRESH_MS = 2000;

const s3Icon = new LabIcon({
  name: 'labdeck:s3',
  svgstr: '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M12 3C7.6 3 4 4.3 4 6v12c0 1.7 3.6 3 8 3s8-1.3 8-3V6c0-1.7-3.6-3-8-3zm0 2c3.9 0 6 1.1 6 1.5S15.9 8 12 8 6 6.9 6 6.5 8.1 5 12 5zm6 13c0 .4-2.1 1.5-6 1.5S6 18.4 6 18v-2.2c1.5.7 3.6 1.2 6 1.2s4.5-.5 6-1.2V18zm0-4.5c0 .4-2.1 1.5-6 1.5s-6-1.1-6-1.5v-2.2c1.5.7 3.6 1.2 6 1.2s4.5-.5 6-1.2v2.2z"/></svg>'
});
const bqIcon = new LabIcon({
  name: 'labdeck:bigquery',
  svgstr: '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M10 3a7 7 0 0 1 5.6 11.2l5.1 5.1-1.4 1.4-5.1-5.1A7 7 0 1 1 10 3zm0 2a5 5 0 1 0 0 10 5 5 0 0 0 0-10zM7 9h1.5v4H7zm2.2-2h1.5v6H9.2zm2.3 3H13v3h-1.5z"/></svg>'
});

async function api(method, path, body) {
  const settings = ServerConnection.makeSettings();
  const init = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  const resp = await ServerConnection.makeRequest(URLExt.join(settings.baseUrl, 'labdeck', path), init, settings);
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

// ------------------------------------------------------------------ S3 drive

class S3Drive extends Drive {
  constructor() {
    super({ name: DRIVE, apiEndpoint: 'labdeck/s3/api/contents' });
  }

  // downloads and "open in new tab" stream from S3 through labdeck/s3/files
  async getDownloadUrl(localPath) {
    return URLExt.join(this.serverSettings.baseUrl, 'labdeck/s3/files', URLExt.encodeParts(localPath));
  }

  // a path outside the person's grants (e.g. another person's home by URL) says so
  async get(localPath, options) {
    try {
      return await super.get(localPath, options);
    } catch (err) {
      const status = err && err.response && err.response.status;
      if (status === 403 || status === 413) {
        showErrorMessage(`Cannot open ${DRIVE}:${localPath}`, err.message);
      }
      throw err;
    }
  }
}

function setupDrive(app, factory, defaultBrowser, labShell, config) {
  app.serviceManager.contents.addDrive(new S3Drive());
  const browser = factory.createFileBrowser(BROWSER_ID, { driveName: DRIVE, refreshInterval: 10000 });
  browser.title.icon = s3Icon;
  browser.title.caption = `S3 (s3://${config.bucket}): your home and the prefixes granted to you`;
  browser.addClass('labdeck-s3-browser');
  browser.toolbar.addItem('labdeck-s3-label', new Widget({ node: el('span', { class: 'labdeck-s3-label', text: `s3://${config.bucket}` }) }));
  browser.toolbar.addItem('labdeck-s3-new-folder', new ToolbarButton({
    icon: newFolderIcon, tooltip: 'New Folder', onClick: () => browser.createNewDirectory()
  }));
  browser.toolbar.addItem('labdeck-s3-upload', new Uploader({ model: browser.model }));
  browser.toolbar.addItem('labdeck-s3-refresh', new ToolbarButton({
    icon: refreshIcon, tooltip: 'Refresh', onClick: () => browser.model.refresh()
  }));
  labShell.add(browser, 'left', { rank: 101 });

  const selected = b => Array.from(b.selectedItems()).filter(item => item.type !== 'directory');
  const transfer = async (items, to) => {
    for (const item of items) {
      try {
        await api('POST', 's3/transfer', { from: item.path, to });
      } catch (err) {
        await showErrorMessage(`Cannot copy ${item.name}`, err.message);
        return;
      }
    }
    await Promise.all([browser.model.refresh(), defaultBrowser.model.refresh()]);
  };
  app.commands.addCommand('labdeck-data:copy-to-s3', {
    label: () => `Copy to S3 (${browser.model.path.slice(DRIVE.length + 1) || 'open a folder in S3 first'})`,
    isEnabled: () => browser.model.path.length > DRIVE.length + 1,
    execute: () => transfer(selected(defaultBrowser), browser.model.path)
  });
  app.commands.addCommand('labdeck-data:copy-to-home', {
    label: () => `Copy to home folder (/${defaultBrowser.model.path})`,
    execute: () => transfer(selected(browser), defaultBrowser.model.path)
  });
  app.contextMenu.addItem({ command: 'labdeck-data:copy-to-s3', selector: '#filebrowser .jp-DirListing-item[data-isdir="false"]', rank: 12 });
  app.contextMenu.addItem({ command: 'labdeck-data:copy-to-home', selector: `#${BROWSER_ID} .jp-DirListing-item[data-isdir="false"]`, rank: 12 });
  return browser;
}

// ------------------------------------------------------------------ BigQuery panel

function humanBytes(n) {
  if (n === null || n === undefined) {
    return '–';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function humanMs(ms) {
  if (ms === null || ms === undefined) {
    return '–';
  }
  return ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

class BigQueryPanel extends Widget {
  constructor(notebooks, config) {
    super({ node: el('div', { class: 'labdeck-bq-panel' }) });
    this.id = PANEL_ID;
    this.title.icon = bqIcon;
    this.title.caption = `BigQuery (${config.project}): tables and your queries`;
    this.addClass('jp-SidePanel');
    this.notebooks = notebooks;
    this.datasets = el('div', { class: 'labdeck-bq-datasets' });
    this.detail = el('div', { class: 'labdeck-bq-table' });
    this.jobs = el('ul', { class: 'labdeck-bq-jobs' });
    const reload = el('button', { class: 'jp-mod-styled labdeck-bq-reload', text: 'Refresh' });
    reload.addEventListener('click', () => this.refresh());
    this.node.append(
      el('h2', { text: 'BigQuery' }), el('div', { class: 'labdeck-bq-project', text: `project ${config.project}` }),
      el('h3', { text: 'Datasets' }), this.datasets, this.detail,
      el('h3', { text: 'Queries' }), this.jobs, reload);
    this._timer = null;
  }

  onAfterShow() {
    this.refresh();
    this._timer = setInterval(() => this.refreshJobs(), JOBS_REFRESH_MS);
  }

  onAfterHide() {
    clearInterval(this._timer);
    this._timer = null;
  }

  dispose() {
    clearInterval(this._timer);
    super.dispose();
  }

  async refresh() {
    await Promise.all([this.refreshDatasets(), this.refreshJobs()]);
  }

  async refreshDatasets() {
    let data;
    try {
      data = await api('GET', 'bigquery/datasets');
    } catch (err) {
      this.datasets.replaceChildren(el('p', { class: 'labdeck-bq-error', text: err.message }));
      return;
    }
    const items = data.datasets.map(ds => {
      const tables = el('ul', { class: 'labdeck-bq-tables' });
      ds.tables.forEach(t => {
        const link = el('a', { href: '#', class: 'labdeck-bq-table-link', 'data-table': `${ds.id}.${t.id}`, text: t.id });
        link.addEventListener('click', ev => {
          ev.preventDefault();
          this.showTable(`${ds.id}.${t.id}`);
        });
        tables.appendChild(el('li', {}, link));
      });
      if (ds.error) {
        tables.appendChild(el('li', { class: 'labdeck-bq-error', text: ds.error }));
      } else if (!ds.tables.length) {
        tables.appendChild(el('li', { class: 'labdeck-empty', text: 'no tables yet' }));
      }
      const details = el('details', { class: 'labdeck-bq-dataset', 'data-dataset': ds.id, open: '' },
        el('summary', {}, ds.id, el('span', { class: 'labdeck-bq-access', text: ds.access === 'rw' ? ' read-write' : ' read-only' })),
        tables);
      return details;
    });
    this.datasets.replaceChildren(...items);
  }

  async showTable(id) {
    this.detail.replaceChildren(el('p', { text: `Loading ${id}…` }));
    let t;
    try {
      t = await api('GET', `bigquery/table?id=${encodeURIComponent(id)}`);
    } catch (err) {
      this.detail.replaceChildren(el('p', { class: 'labdeck-bq-error', text: err.message }));
      return;
    }
    const schema = el('table', { class: 'labdeck-bq-schema' },
      el('tr', {}, el('th', { text: 'column' }), el('th', { text: 'type' }), el('th', { text: 'mode' })),
      ...t.schema.map(f => el('tr', {}, el('td', { text: f.name }), el('td', { text: f.type }), el('td', { text: f.mode || '' }))));
    const preview = el('table', { class: 'labdeck-bq-preview' },
      el('tr', {}, ...t.preview.columns.map(c => el('th', { text: c }))),
      ...t.preview.rows.map(r => el('tr', {}, ...r.map(v => el('td', { text: v === null ? 'NULL' : String(v) })))));
    const py = el('button', { class: 'jp-mod-styled jp-mod-accept labdeck-bq-insert-python', text: 'Insert query cell' });
    py.addEventListener('click', () => this.insert([
      `from google.cloud import bigquery\n\nclient = bigquery.Client()\ndf = client.query("SELECT * FROM \`${id}\` LIMIT 1000").to_dataframe()\ndf.head()`
    ]));
    const magic = el('button', { class: 'jp-mod-styled labdeck-bq-insert-magic', text: 'Insert %%bigquery cell' });
    magic.addEventListener('click', () => this.insert([
      '%load_ext google.cloud.bigquery', `%%bigquery df\nSELECT * FROM \`${id}\` LIMIT 1000`
    ]));
    this.detail.replaceChildren(
      el('h4', { class: 'labdeck-bq-table-title', text: id }),
      el('p', { text: `${t.type === 'VIEW' ? 'view' : `${t.num_rows} rows`}, ${t.schema.length} columns` }),
      schema, el('div', { class: 'labdeck-bq-buttons' }, py, magic),
      el('h4', { text: `First ${t.preview.rows.length} rows` }), el('div', { class: 'labdeck-bq-preview-wrap' }, preview));
  }

  insert(sources) {
    const panel = this.notebooks.currentWidget;
    if (!panel) {
      showErrorMessage('No notebook', 'Open a notebook, then insert the query cell again.');
      return;
    }
    const notebook = panel.content;
    sources.forEach(src => {
      NotebookActions.insertBelow(notebook);
      notebook.activeCell.model.sharedModel.setSource(src);
    });
  }

  async refreshJobs() {
    let data;
    try {
      data = await api('GET', 'bigquery/jobs');
    } catch (err) {
      this.jobs.replaceChildren(el('li', { class: 'labdeck-bq-error', text: err.message }));
      return;
    }
    if (!data.jobs.length) {
      this.jobs.replaceChildren(el('li', { class: 'labdeck-empty', text: 'No queries yet.' }));
      return;
    }
    this.jobs.replaceChildren(...data.jobs.map(j => {
      const state = j.cancelled ? 'CANCELLED' : j.error ? 'FAILED' : j.state;
      const item = el('li', { class: 'labdeck-bq-job', 'data-job-id': j.id, 'data-state': state },
        el('span', { class: `labdeck-bq-state labdeck-bq-state-${state.toLowerCase()}`, text: state }),
        el('span', { class: 'labdeck-bq-elapsed', text: humanMs(j.elapsed_ms) }),
        el('span', { class: 'labdeck-bq-bytes', text: humanBytes(j.bytes_processed) }),
        el('code', { class: 'labdeck-bq-sql', title: j.sql, text: j.sql }));
      if (j.state === 'RUNNING' || j.state === 'PENDING') {
        const cancel = el('button', { class: 'jp-mod-styled jp-mod-warn labdeck-bq-cancel', text: 'Cancel' });
        cancel.addEventListener('click', async () => {
          cancel.disabled = true;
          try {
            await api('POST', `bigquery/jobs/${encodeURIComponent(j.id)}/cancel?location=${encodeURIComponent(j.location || '')}`);
          } catch (err) {
            showErrorMessage('Cannot cancel the query', err.message);
          }
          this.refreshJobs();
        });
        item.appendChild(cancel);
      } else if (j.error) {
        item.appendChild(el('div', { class: 'labdeck-bq-job-error', text: j.error }));
      }
      return item;
    }));
  }
}

const plugin = {
  id: '@labdeck/data:plugin',
  description: 'Your S3 as a drive in the file browser; BigQuery tables and your queries in a side panel.',
  autoStart: true,
  requires: [IFileBrowserFactory, IDefaultFileBrowser, ILabShell, INotebookTracker],
  activate: async (app, factory, defaultBrowser, labShell, notebooks) => {
    let config;
    try {
      config = await api('GET', 'data/config');
    } catch (err) {
      console.warn('labdeck data: this server has no data features', err);
      return;
    }
    if (config.s3 && config.s3.enabled) {
      setupDrive(app, factory, defaultBrowser, labShell, config.s3);
    }
    if (config.bigquery && config.bigquery.enabled) {
      labShell.add(new BigQueryPanel(notebooks, config.bigquery), 'left', { rank: 102 });
    }
  }
};

export default plugin;
