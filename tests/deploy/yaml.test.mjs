// Static check of deploy/: every YAML file parses (CI cannot run Docker or Kubernetes; see support.mjs).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import {
  rel,
  YAML_FILES,
  yamlDocuments,
} from './support.mjs';

// Every YAML file parses

describe('YAML under deploy/', () => {
  test('there are YAML files', () => {
    assert.ok(YAML_FILES.length >= 5, `found only ${YAML_FILES.map(rel).join(', ')}`);
  });
  for (const file of YAML_FILES) {
    test(`${rel(file)} parses (every document)`, () => {
      const docs = yamlDocuments(file);
      assert.ok(docs.length > 0, 'no YAML document');
      for (const [i, doc] of docs.entries()) {
        assert.deepEqual(doc.errors.map(String), [], `document ${i + 1} has errors`);
        assert.deepEqual(doc.warnings.map(String), [], `document ${i + 1} has warnings`);
      }
    });
  }
});
