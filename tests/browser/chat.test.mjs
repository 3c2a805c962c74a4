// Browser end-to-end test of chat: three demo pages (viewers, `&publish=0`: chat needs no media) in one room,
// driven through `window.chorusRoom.chat` and the chat panel. A late joiner sees the history; sends, edits,
// deletes and typing reach the other tabs; refusals reject with the protocol's codes.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Browser, ChorusServer, waitFor, withDiagnostics } from './harness.mjs';

const ROOM = 'chat-e2e';

async function waitConnected(entry) {
  await waitFor(
    async () => {
      const s = await entry.page.evaluate(() => ({ state: window.chorusState, error: window.chorusError }));
      if (s.state === 'error') throw new Error(`${entry.label}: ${JSON.stringify(s.error)}`);
      return s.state === 'connected';
    },
    { timeoutMs: 20000, what: `${entry.label} to connect` },
  );
}

/** `room.chat.history` of a page, as `[{id, identity, text, edited}]`. */
function history(entry) {
  return entry.page.evaluate(() =>
    window.chorusRoom.chat.history.map((m) => ({ id: m.id, identity: m.identity, text: m.text, edited: !!m.editedAt })),
  );
}

/** The chat panel's items, as `[{id, who, text, edited, canEdit}]`. */
function panel(entry) {
  return entry.page.evaluate(() =>
    [...document.querySelectorAll('#chat-list .chat-item')].map((li) => ({
      id: li.dataset.id,
      who: li.querySelector('.chat-who').textContent,
      text: li.querySelector('.chat-text').textContent,
      edited: !!li.querySelector('.chat-edited'),
      canEdit: !!li.querySelector('.chat-edit'),
    })),
  );
}

/** Runs a chat call in the page; resolves with its result, or `{code}` when it rejects. */
function chatCall(entry, method, ...args) {
  return entry.page.evaluate(
    async ([m, a]) => {
      try {
        return await window.chorusRoom.chat[m](...a);
      } catch (err) {
        return { code: err.code };
      }
    },
    [method, args],
  );
}

async function waitHistory(entry, want, what) {
  return waitFor(
    async () => {
      const h = await history(entry);
      return want(h) ? h : false;
    },
    { timeoutMs: 10000, intervalMs: 200, what: `${entry.label}: ${what}` },
  );
}

describe('chat in three tabs', () => {
  const server = new ChorusServer();
  const browser = new Browser();
  let base;

  before(async () => {
    await server.start();
    await browser.launch();
    base = `${server.baseUrl}/?room=${ROOM}&publish=0`;
  });

  after(async () => {
    await browser.close();
    await server.stop();
  });

  it('propagates messages, edits, deletes and typing; a late joiner sees the history', async () => {
    await withDiagnostics('chat', { server, browser }, async () => {
      const alice = await browser.open('alice', `${base}&identity=alice&name=Alice`);
      const bob = await browser.open('bob', `${base}&identity=bob`);
      await Promise.all([waitConnected(alice), waitConnected(bob)]);

      // Alice sends: she gets the stored message back, Bob receives it.
      const sent = await chatCall(alice, 'send', 'hello from alice');
      assert.ok(sent.id && sent.id.startsWith('CM_'), JSON.stringify(sent));
      assert.equal(sent.identity, 'alice');
      assert.equal(sent.name, 'Alice');
      assert.ok(sent.timestamp > 1.6e12);
      await waitHistory(bob, (h) => h.some((m) => m.id === sent.id && m.text === 'hello from alice'), 'alice message');
      const bobs = await chatCall(bob, 'send', 'hi alice');
      await waitHistory(alice, (h) => h.length === 2, 'two messages');

      // Bob may not edit or delete Alice's message; empty and oversized texts are refused.
      assert.deepEqual(await chatCall(bob, 'edit', sent.id, 'hacked'), { code: 'chat_not_author' });
      assert.deepEqual(await chatCall(bob, 'delete', sent.id), { code: 'chat_not_author' });
      assert.deepEqual(await chatCall(bob, 'send', '   '), { code: 'chat_empty' });
      assert.deepEqual(await chatCall(bob, 'send', 'x'.repeat(5000)), { code: 'chat_too_long' });
      assert.deepEqual(await chatCall(bob, 'edit', 'CM_nope', 'x'), { code: 'chat_unknown_message' });

      // Alice edits hers, Bob deletes his: both propagate.
      const edited = await chatCall(alice, 'edit', sent.id, 'hello, edited');
      assert.equal(edited.text, 'hello, edited');
      assert.ok(edited.editedAt >= sent.timestamp);
      await waitHistory(bob, (h) => h.some((m) => m.id === sent.id && m.text === 'hello, edited' && m.edited), 'edit');
      assert.equal(await chatCall(bob, 'delete', bobs.id), undefined);
      await waitHistory(alice, (h) => h.length === 1 && h[0].id === sent.id, 'delete');

      // A late joiner gets the history (edited, without the deleted one), in its panel too.
      const carol = await browser.open('carol', `${base}&identity=carol`);
      await waitConnected(carol);
      const carolHistory = await waitHistory(carol, (h) => h.length === 1, 'history on join');
      assert.deepEqual(carolHistory, [{ id: sent.id, identity: 'alice', text: 'hello, edited', edited: true }]);
      await waitFor(async () => (await panel(carol)).length === 1, { what: 'carol panel renders history' });
      assert.deepEqual(await panel(carol), [
        { id: sent.id, who: 'Alice', text: 'hello, edited', edited: true, canEdit: false },
      ]);
      // Alice's own message has edit/delete buttons in her panel.
      assert.equal((await panel(alice))[0].canEdit, true);

      // Typing: Carol types in the panel's input; Alice sees it in the API and the panel.
      await carol.page.fill('#chat-input', 'typing…');
      await waitFor(
        () => alice.page.evaluate(() => [...window.chorusRoom.chat.typing.values()].includes('carol')),
        { timeoutMs: 10000, intervalMs: 200, what: 'alice sees carol typing' },
      );
      await waitFor(
        async () => (await alice.page.textContent('#chat-typing')).includes('carol is typing'),
        { timeoutMs: 5000, intervalMs: 200, what: 'typing indicator in alice panel' },
      );

      // Carol sends through the panel's form: everyone gets it, and her typing ends.
      await carol.page.fill('#chat-input', 'sent from the panel');
      await carol.page.click('#chat-send');
      for (const entry of [alice, bob, carol]) {
        await waitHistory(entry, (h) => h.some((m) => m.text === 'sent from the panel' && m.identity === 'carol'), 'panel send');
      }
      await waitFor(
        () => alice.page.evaluate(() => window.chorusRoom.chat.typing.size === 0),
        { timeoutMs: 5000, intervalMs: 200, what: 'carol stops typing' },
      );
      await waitFor(async () => (await panel(bob)).some((i) => i.text === 'sent from the panel' && i.who === 'carol'), {
        what: 'bob panel shows carol message',
      });

      // Carol deletes her message through the panel's delete button.
      await carol.page.click('#chat-list .chat-item[data-identity="carol"] .chat-delete');
      await waitHistory(bob, (h) => !h.some((m) => m.identity === 'carol'), 'panel delete');
      await waitFor(async () => !(await panel(alice)).some((i) => i.who === 'carol'), { what: 'alice panel drops it' });
    });
  });
});
