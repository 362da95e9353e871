// The category rule, the same as the backend's (doodle_core::category): 1-64 characters of ASCII
// letters, digits, space, '_' or '-', with no leading or trailing space.

export const MAX_LEN = 64;

const ALLOWED = /^[A-Za-z0-9 _-]$/;

/** Returns null for a valid name, else a message saying what is wrong. */
export function categoryProblem(name) {
  if (name.length === 0) return 'Type a category name.';
  const chars = [...name];
  if (chars.length > MAX_LEN) {
    return `That is ${chars.length} characters long; at most ${MAX_LEN} are allowed.`;
  }
  const bad = chars.find((c) => !ALLOWED.test(c));
  if (bad !== undefined) {
    const shown = bad === '"' ? "'\"'" : `"${bad}"`;
    return `${shown} is not allowed: use letters, digits, space, _ or -.`;
  }
  if (name.startsWith(' ') || name.endsWith(' ')) {
    return 'No space at the start or the end, please.';
  }
  return null;
}
