/**
 * What Markdown is given (HTML made literal outside code) and what a shell is given (quoted).
 */

import { execFileSync } from 'child_process';

import { literalHtml, shellQuote } from '../text';

describe('literalHtml', () => {
  test('a tag in prose becomes text', () => {
    expect(literalHtml('look: <img src=x onerror=alert(1)> ok')).toBe(
      'look: &lt;img src=x onerror=alert(1)> ok'
    );
    expect(literalHtml('<script>x</script>')).toBe('&lt;script>x&lt;/script>');
  });

  test('code spans and fenced blocks are left as they are (Markdown shows them verbatim)', () => {
    const text = [
      'use `<div>` here and <b>not</b> there',
      '```html',
      '<p>kept</p>',
      '```',
      'after <i>',
      '~~~~',
      '<x>',
      '~~~',
      'still fenced <y>',
      '~~~~',
      'out <z>'
    ].join('\n');
    expect(literalHtml(text).split('\n')).toEqual([
      'use `<div>` here and &lt;b>not&lt;/b> there',
      '```html',
      '<p>kept</p>',
      '```',
      'after &lt;i>',
      '~~~~',
      '<x>',
      '~~~',
      'still fenced <y>',
      '~~~~',
      'out &lt;z>'
    ]);
  });

  test('text without tags is unchanged', () => {
    const text = '# Title\n\n- a\n- b > c\n\n`code` and **bold**';
    expect(literalHtml(text)).toBe(text);
  });
});

describe('shellQuote', () => {
  test.each([
    ['brave-tiger-1234'],
    ['/home/me/my project'],
    ["it's"],
    ['$(rm -rf ~)'],
    ['a;b|c&d'],
    ['`x`']
  ])('bash gets %s back as one word', word => {
    const out = execFileSync('bash', ['-c', `printf '%s' ${shellQuote(word)}`]).toString();
    expect(out).toBe(word);
  });

  test('plain words stay unquoted', () => {
    expect(shellQuote('catty/brave-tiger-1234')).toBe('catty/brave-tiger-1234');
  });
});
