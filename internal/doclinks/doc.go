// Package doclinks holds the test that keeps Berth's Markdown documentation
// (README.md and docs/) free of broken relative links: every linked file
// exists inside the repository and every #anchor names a heading of its
// target, slugged as GitHub slugs headings. It has no code of its own.
package doclinks
