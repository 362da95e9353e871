// Wiring: the pad, the guesses, teaching and the error banner.

import { Backend } from './api.js';
import { categoryProblem, MAX_LEN } from './category.js';
import { Latest } from './latest.js';
import { DrawingPad } from './pad.js';
import { drawPreview, rasterize, toBase64 } from './preprocess.js';

const GUESS_DELAY_MS = 250;

const $ = (id) => document.getElementById(id);
const ui = {
  pad: $('pad'),
  undo: $('undo'),
  clear: $('clear'),
  guess: $('guess'),
  guessStatus: $('guess-status'),
  guesses: $('guesses'),
  preview: $('preview'),
  teach: $('teach'),
  category: $('category'),
  categories: $('categories'),
  categoryHelp: $('category-help'),
  categoryError: $('category-error'),
  save: $('save'),
  saveStatus: $('save-status'),
  error: $('error'),
};

const guessing = new Latest();
const saving = new Latest();
let backend = null;
let guessTimer = 0;
let pad = null;

// One banner for every failure; `source` ('guess', 'save', 'config') lets a success clear only
// its own kind of message (a guess that works does not hide a failed save).
let errorSource = null;

function showError(source, message) {
  errorSource = source;
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError(source) {
  if (errorSource !== source) return;
  errorSource = null;
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function updateButtons() {
  const empty = pad?.isEmpty ?? true;
  ui.undo.disabled = empty;
  ui.clear.disabled = empty;
  ui.guess.disabled = empty || !backend || guessing.inFlight;
  ui.save.disabled = empty || !backend || saving.inFlight
    || categoryProblem(ui.category.value) !== null;
  ui.guess.setAttribute('aria-busy', String(guessing.inFlight));
  ui.save.setAttribute('aria-busy', String(saving.inFlight));
}

/** The drawing as the model sees it; also shown in the preview. */
function currentImage() {
  const bytes = rasterize(pad.vectorStrokes);
  drawPreview(ui.preview, bytes);
  return bytes;
}

function showGuesses(guesses) {
  ui.guesses.replaceChildren(...guesses.slice(0, 3).map((g, i) => {
    const pct = Math.round(g.score * 100);
    const li = document.createElement('li');
    li.className = 'guess';
    const pick = document.createElement('button');
    pick.type = 'button';
    pick.className = 'guess-label';
    pick.textContent = g.label.replaceAll('_', ' ');
    pick.dataset.label = g.label;
    pick.title = `Teach: it's a ${g.label}`;
    pick.setAttribute('aria-label', `${g.label}, ${pct} percent. Choose to teach this label.`);
    pick.addEventListener('click', () => {
      ui.category.value = g.label;
      onCategoryInput();
      ui.category.focus();
    });
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('div');
    fill.className = i === 0 ? 'fill best' : 'fill';
    fill.style.width = `${Math.max(0, Math.min(100, g.score * 100))}%`;
    bar.append(fill);
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = `${pct}%`;
    li.append(pick, bar, score);
    return li;
  }));
  const best = guesses[0];
  ui.guessStatus.textContent = `I think it's a ${best.label.replaceAll('_', ' ')}.`;
}

function resetGuesses(message) {
  ui.guesses.replaceChildren();
  ui.guessStatus.textContent = message;
}

/** `body[data-guess]`: 'scheduled' (waiting for the debounce), 'busy' (in flight) or 'idle'. */
function refreshGuessState() {
  document.body.dataset.guess = guessTimer ? 'scheduled' : guessing.inFlight ? 'busy' : 'idle';
}

function cancelScheduledGuess() {
  clearTimeout(guessTimer);
  guessTimer = 0;
}

async function guess() {
  cancelScheduledGuess();
  if (!backend || pad.isEmpty) {
    refreshGuessState();
    return;
  }
  const bytes = currentImage();
  const request = guessing.start();
  refreshGuessState();
  updateButtons();
  ui.guessStatus.textContent = 'Thinking…';
  try {
    const guesses = await backend.predict(toBase64(bytes), request.signal);
    if (!request.isCurrent()) return; // a newer drawing was sent meanwhile
    showGuesses(guesses);
    clearError('guess');
  } catch (err) {
    if (!request.isCurrent()) return;
    resetGuesses('No guess: see the message above.');
    showError('guess', err.message);
  } finally {
    request.done();
    refreshGuessState();
    updateButtons();
  }
}

function scheduleGuess() {
  cancelScheduledGuess();
  guessTimer = setTimeout(guess, GUESS_DELAY_MS);
  refreshGuessState();
}

/** A new stroke began: wait for it to end before guessing. */
function onStrokeStart() {
  if (!guessTimer) return;
  cancelScheduledGuess();
  refreshGuessState();
}

function onDrawingChanged() {
  ui.saveStatus.textContent = '';
  if (pad.isEmpty) {
    cancelScheduledGuess();
    guessing.cancel();
    refreshGuessState();
    resetGuesses('Draw something to get a guess.');
    drawPreview(ui.preview, new Uint8Array(28 * 28));
  }
  updateButtons();
}

function onCategoryInput() {
  const value = ui.category.value;
  const problem = value === '' ? null : categoryProblem(value);
  ui.categoryError.textContent = problem ?? '';
  ui.category.setAttribute('aria-invalid', String(problem !== null));
  updateButtons();
}

async function save(event) {
  event.preventDefault();
  const category = ui.category.value;
  const problem = categoryProblem(category);
  if (problem) {
    ui.categoryError.textContent = problem;
    ui.category.setAttribute('aria-invalid', 'true');
    ui.category.focus();
    return;
  }
  if (!backend || pad.isEmpty || saving.inFlight) return;
  const bytes = currentImage();
  const request = saving.start();
  updateButtons();
  ui.saveStatus.textContent = 'Saving…';
  try {
    const answer = await backend.saveImage(toBase64(bytes), category, request.signal);
    ui.saveStatus.textContent = `Saved as “${category}”. Thank you! (${answer.filepath ?? answer.message})`;
    clearError('save');
    addCategory(category);
  } catch (err) {
    ui.saveStatus.textContent = 'Not saved.';
    showError('save', err.message);
  } finally {
    request.done();
    updateButtons();
  }
}

function addCategory(name) {
  const known = [...ui.categories.options].some((o) => o.value === name);
  if (!known) {
    const option = document.createElement('option');
    option.value = name;
    ui.categories.append(option);
  }
}

async function loadCategories() {
  try {
    const names = await backend.categories();
    ui.categories.replaceChildren();
    names.forEach(addCategory);
    ui.categoryHelp.textContent = `Pick one of the model's ${names.length} categories `
      + `(${names.slice(0, 4).join(', ')}, …) or type a new one.`;
  } catch (err) {
    ui.categoryHelp.textContent = `Could not load the model's categories (${err.message}). `
      + 'You can still type one.';
  }
}

async function start() {
  pad = new DrawingPad(ui.pad, { onStrokeStart, onStrokeEnd: scheduleGuess, onChange: onDrawingChanged });
  const undo = () => {
    pad.undo();
    if (!pad.isEmpty) scheduleGuess();
  };
  ui.undo.addEventListener('click', undo);
  ui.clear.addEventListener('click', () => pad.clear());
  ui.guess.addEventListener('click', guess);
  ui.category.addEventListener('input', onCategoryInput);
  ui.teach.addEventListener('submit', save);
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z' && e.target !== ui.category) {
      e.preventDefault();
      undo();
    }
  });
  drawPreview(ui.preview, new Uint8Array(28 * 28));
  refreshGuessState();
  updateButtons();

  let config;
  try {
    const response = await fetch('config.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (err) {
    showError('config', `Cannot load the page's configuration (config.json): ${err.message}`);
    return;
  }
  backend = new Backend(config.backend_url);
  ui.category.maxLength = config.category_max_len ?? MAX_LEN;
  if (config.category_rule) ui.category.title = config.category_rule;
  document.body.dataset.ready = 'true';
  updateButtons();
  await loadCategories();
}

start();
