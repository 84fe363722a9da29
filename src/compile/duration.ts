// The parser lives in api/ (validation needs it too); kept here so compile/ imports stay as they were.
export { parseDuration } from '../api/duration.ts';
