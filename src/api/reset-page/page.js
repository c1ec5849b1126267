// The reset page's only script (served from this origin; the page's CSP
// allows nothing else). With ?token=… it sets the new password through
// POST /password/reset; without one it asks for a link (POST /password/forgot).
// URLs are relative to the page, so a proxy may serve it under a path prefix.
// Every answer of the JSON API is shown in words, next to the field at fault.
'use strict';

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get('token');

/** The API's human message without its trailing reason code: "password is too short (password_too_short)". */
function sentence(text) {
  const s = String(text || '').replace(/\s*\([a-z_]+\)$/, '');
  return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.') : 'Something went wrong.';
}

function fieldError(input, box, message) {
  box.textContent = message;
  box.hidden = !message;
  if (message) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  } else {
    input.removeAttribute('aria-invalid');
  }
}

function say(message) {
  $('status').textContent = message;
}

async function send(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'omit',
  });
  let json = {};
  if (res.status !== 204) json = await res.json().catch(() => ({}));
  return { status: res.status, json, retryAfter: res.headers.get('retry-after') };
}

function later(answer) {
  const wait = answer.retryAfter ? ` Try again in ${answer.retryAfter} seconds.` : ' Try again later.';
  if (answer.status === 429) return `Too many attempts.${wait}`;
  return `The service is unavailable right now.${wait}`;
}

async function submit(form, work) {
  const button = form.querySelector('button');
  button.disabled = true;
  say('');
  try {
    await work();
  } catch {
    say('The service could not be reached. Check your connection and try again.');
  } finally {
    button.disabled = false;
  }
}

function choosePassword() {
  $('choose').hidden = false;
  const input = $('password');
  const error = $('password-error');
  $('show').addEventListener('change', (e) => {
    input.type = e.target.checked ? 'text' : 'password';
  });
  $('choose-form').addEventListener('submit', (event) => {
    event.preventDefault();
    submit(event.target, async () => {
      fieldError(input, error, '');
      if (!input.value) return fieldError(input, error, 'Enter a new password.');
      const answer = await send('reset', { token, password: input.value });
      if (answer.status === 204) {
        $('choose').hidden = true;
        say('Your password has been changed. Sign in with your new password; other sessions were signed out.');
        return;
      }
      if (answer.status === 400 && answer.json.field === 'password') return fieldError(input, error, sentence(answer.json.error_description));
      if (answer.status === 400 && answer.json.field === 'token') {
        $('choose').hidden = true;
        say('This link is invalid, already used or expired. Request a new one from this page without the link.');
        return;
      }
      say(answer.status === 429 || answer.status === 503 ? later(answer) : sentence(answer.json.error_description));
    });
  });
}

function requestLink() {
  $('request').hidden = false;
  const input = $('email');
  const error = $('email-error');
  $('request-form').addEventListener('submit', (event) => {
    event.preventDefault();
    submit(event.target, async () => {
      fieldError(input, error, '');
      if (!input.value.includes('@')) return fieldError(input, error, 'Enter the email address of your account.');
      const answer = await send('forgot', { email: input.value.trim() });
      if (answer.status === 202) {
        say(`If ${input.value.trim()} has an account, a link is on its way to it. Check your inbox.`);
        return;
      }
      if (answer.status === 400) return fieldError(input, error, sentence(answer.json.error_description));
      say(answer.status === 429 || answer.status === 503 ? later(answer) : sentence(answer.json.error_description));
    });
  });
}

if (token) choosePassword();
else requestLink();
