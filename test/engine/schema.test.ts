import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as S from '../../engine/schema';

const catalogLike = S.object({
  modules: S.array(S.object({ path: S.string, dIn: S.integer(1, 16), layout: S.oneOf('in_out', 'out_in') }, { hasResidual: S.boolean })),
  components: S.array(S.object({ key: S.string }, { stats: S.record(S.object({ meanAbs: S.number })) }), 3),
});

const good = () => ({
  modules: [{ path: 'h.0.mlp', dIn: 4, layout: 'in_out', hasResidual: null }],
  components: [{ key: 'h.0.mlp:0', stats: { de: { meanAbs: 1.5 }, fr: { meanAbs: 0 } } }, { key: 'h.0.mlp:1' }],
  extra: 'kept unread',
});

test('a conforming value has no problem, by the fast test and by the located check alike', () => {
  assert.equal(catalogLike(good(), ''), undefined);
  assert.equal(catalogLike.valid(good()), true);
});

test('the first problem is located by its JSON path, and the fast test agrees that it fails', () => {
  const cases: [(v: any) => void, string][] = [
    [(v) => { v.components[1].stats = { it: { meanAbs: 'x' } }; }, 'components[1].stats.it.meanAbs must be a finite number, not "x"'],
    [(v) => { v.modules[0].dIn = 17; }, 'modules[0].dIn must be a whole number from 1 to 16, not 17'],
    [(v) => { delete v.modules[0].path; }, 'modules[0] has no "path"'],
    [(v) => { v.modules[0].layout = 'rows'; }, 'modules[0].layout must be "in_out" or "out_in", not "rows"'],
    [(v) => { v.modules[0].hasResidual = 1; }, 'modules[0].hasResidual must be true or false, not 1'],
    [(v) => { v.components.push({ key: 'a' }, { key: 'b' }); }, 'components has 4 entries (at most 3)'],
    [(v) => { v.components = {}; }, 'components must be a list, not {}'],
    [(v) => { v.components[0].stats = []; }, 'components[0].stats must be an object, not []'],
    [(v) => { v.components[0].key = 7; v.modules[0].dIn = 0; }, 'modules[0].dIn must be a whole number from 1 to 16, not 0'],
  ];
  for (const [spoil, message] of cases) {
    const v = good();
    spoil(v);
    assert.equal(catalogLike(v, ''), message);
    assert.equal(catalogLike.valid(v), false, message);
  }
  assert.equal(catalogLike(null, ''), 'the value must be an object, not null');
});
