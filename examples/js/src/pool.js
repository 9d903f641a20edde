// Guard instances, one call at a time each.
//
// Under JSPI a call suspends inside the component while the store awaits I/O, and the component's
// exports are synchronous in WIT, so jco queues any other call to the same instance until it
// returns: one instance would serialize every call behind every store round trip. Concurrent calls
// therefore each take their own instance; at most `max` exist, later calls queue here.
export class InstancePool {
  #create;
  #max;
  #idle = [];
  #size = 0;
  #waiters = [];

  constructor(create, max) {
    this.#create = create;
    this.#max = max;
  }

  /** Runs `fn(instance)`; an instance that threw something other than a guard error is dropped. */
  async use(fn, isGuardError) {
    const instance = await this.#acquire();
    let healthy = true;
    try {
      return await fn(instance);
    } catch (err) {
      // A trap or a binding error can leave the instance's memory half-written: never reuse it.
      healthy = isGuardError(err);
      throw err;
    } finally {
      this.#release(instance, healthy);
    }
  }

  async #acquire() {
    if (this.#idle.length) return this.#idle.pop();
    if (this.#size < this.#max) {
      this.#size++;
      try {
        return await this.#create();
      } catch (err) {
        this.#size--;
        this.#wakeCreator();
        throw err;
      }
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #release(instance, healthy) {
    if (!healthy) {
      this.#size--;
      this.#wakeCreator();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(instance);
    else this.#idle.push(instance);
  }

  #wakeCreator() {
    const waiter = this.#waiters.shift();
    if (waiter) this.#acquire().then(waiter.resolve, waiter.reject);
  }
}
