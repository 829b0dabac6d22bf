// keyward browser app: renaming one of your own sessions in place
// (`PATCH /auth/sessions/{id} {"name"}`). An empty name brings back the
// device name the server derives from the browser's user agent.

const MAX_NAME = 64;

/**
 * Turns the title of session row `row` into a small form. `save(name)`
 * sends the new name (null to remove it) and resolves when the list has
 * been reloaded; `fail(err)` shows an error. Escape or "Cancel" puts the
 * title back as it was.
 */
export function startRename(row, save, fail) {
  const title = row.querySelector('.row-title');
  if (!title || row.querySelector('form.rename-form')) return;
  const shown = title.querySelector('strong')?.textContent || '';
  const id = `rename-${row.dataset.sessionId}`;
  const form = document.createElement('form');
  form.className = 'rename-form inline-form';
  form.noValidate = true;
  const label = document.createElement('label');
  label.htmlFor = id;
  label.className = 'visually-hidden';
  label.textContent = 'Session name';
  const input = document.createElement('input');
  Object.assign(input, { id, type: 'text', value: shown, maxLength: MAX_NAME, autocomplete: 'off' });
  input.setAttribute('aria-describedby', `${id}-hint`);
  const hint = document.createElement('span');
  hint.id = `${id}-hint`;
  hint.className = 'hint';
  hint.textContent = 'Empty: the device name.';
  const ok = document.createElement('button');
  Object.assign(ok, { type: 'submit', className: 'btn small primary', textContent: 'Save' });
  const cancel = document.createElement('button');
  Object.assign(cancel, { type: 'button', className: 'btn small secondary', textContent: 'Cancel' });
  form.append(label, input, ok, cancel, hint);
  const restore = () => { form.replaceWith(title); };
  cancel.addEventListener('click', restore);
  form.addEventListener('keydown', (e) => { if (e.key === 'Escape') restore(); });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    ok.disabled = true;
    try {
      await save(input.value.trim() || null);
    } catch (err) {
      fail(err);
      ok.disabled = false;
    }
  });
  title.replaceWith(form);
  input.focus();
  input.select();
}
