// @ts-check
// A small landing page until the real SPA lands: it shows whether the server is ready.

/** @returns {Promise<void>} */
async function showReadiness() {
  const out = document.getElementById('status');
  if (!out) return;
  try {
    const res = await fetch('/readyz');
    out.textContent = res.ok ? 'ready' : `not ready (${res.status})`;
  } catch {
    out.textContent = 'unreachable';
  }
}

showReadiness();
