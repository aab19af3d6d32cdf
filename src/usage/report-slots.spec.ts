import { ReportSlots } from './report-slots';

describe('ReportSlots', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('lets `total` reports run, at most `perOrg` of one org; the others wait and are let in as slots free, in arrival order among those that fit', async () => {
    const slots = new ReportSlots(3, 2, 1000);
    const a1 = await slots.acquire('A');
    const a2 = await slots.acquire('A');
    const order: string[] = [];
    const a3 = slots.acquire('A').then((release) => (order.push('A3'), release));
    // A is at its share: B still fits, though A3 came first.
    const b1 = await slots.acquire('B');
    expect(slots.running).toBe(3);
    const b2 = slots.acquire('B').then((release) => (order.push('B2'), release));
    a1();
    a1(); // a second release changes nothing
    await Promise.resolve();
    await Promise.resolve();
    expect(order).toEqual(['A3']);
    expect(slots.running).toBe(3);
    b1();
    await b2;
    expect(order).toEqual(['A3', 'B2']);
    (await a3)();
    a2();
    (await b2)();
    expect(slots.running).toBe(0);
  });

  it('a report that waits longer than waitMs is a 503 reports_busy with Retry-After, and leaves the queue', async () => {
    let busy = 0;
    const slots = new ReportSlots(1, 1, 1000, () => (busy += 1));
    const held = await slots.acquire('A');
    const waiting = slots.acquire('B');
    jest.advanceTimersByTime(1000);
    await expect(waiting).rejects.toMatchObject({ status: 503, code: 'reports_busy', headers: { 'retry-after': '1' } });
    expect(busy).toBe(1);
    held();
    expect(slots.running).toBe(0);
    (await slots.acquire('B'))();
  });
});
