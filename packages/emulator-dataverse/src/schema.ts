/** Table definitions: which entity sets exist, their columns, lookups, keys and state models. */
export type ColumnType = 'string' | 'memo' | 'int' | 'decimal' | 'bool' | 'datetime' | 'guid'

export interface LookupDef {
  /** Logical names of the tables the lookup may point at. */
  targets: readonly string[]
}

export interface TableDef {
  logicalName: string
  entitySet: string
  primaryKey: string
  primaryName: string
  /** Privilege entity name: prv{Create,Read,Write,Delete,...}{privilegeEntity}. */
  privilegeEntity: string
  objectTypeCode: number
  ownership: 'user' | 'org'
  columns: Record<string, ColumnType>
  lookups: Record<string, LookupDef>
  /** statecode → allowed statuscodes, first one is the default. */
  states?: Record<number, readonly number[]>
  defaultState?: number
  /** Alternate keys: key name → columns. */
  alternateKeys: Record<string, readonly string[]>
  /** Columns that get a case-insensitive value index (keys and e-mail resolution). */
  indexed: readonly string[]
  /** Collection-valued navigation that creates activity parties, e.g. email_activity_parties. */
  partyCollection?: string
  changeTracking: boolean
  /** Read-only view over other tables (activitypointers = emails + appointments + tasks). */
  virtualOf?: readonly string[]
  /**
   * Columns that return false for both IsValidForCreate and IsValidForUpdate in the Dataverse table
   * reference (besides createdon/modifiedon/versionnumber, which every table has): a write → 400.
   */
  readOnly?: readonly string[]
  /**
   * Platform columns read-only in Dataverse that the emulator accepts on **create only** (the server-side
   * sync runtime plays the platform when it delivers an e-mail; see README "Read-only columns").
   */
  createOnly?: readonly string[]
  /** Only readable through the Web API (intersect tables such as systemuserprofiles). */
  apiReadOnly?: boolean
}

const common: Record<string, ColumnType> = {
  createdon: 'datetime',
  modifiedon: 'datetime',
  versionnumber: 'int',
}

const activityColumns: Record<string, ColumnType> = {
  ...common,
  activityid: 'guid',
  subject: 'string',
  description: 'memo',
  scheduledstart: 'datetime',
  scheduledend: 'datetime',
  actualstart: 'datetime',
  actualend: 'datetime',
  prioritycode: 'int',
  statecode: 'int',
  statuscode: 'int',
  regardingobjecttypecode: 'string',
  concord_linkid: 'string',
  activitytypecode: 'string',
}

/** Tables an activity's regardingobjectid may point at (Sales adds lead and opportunity). */
export const REGARDING_TARGETS = ['account', 'contact', 'lead', 'opportunity'] as const

const activityLookups: Record<string, LookupDef> = {
  regardingobjectid: { targets: REGARDING_TARGETS },
  ownerid: { targets: ['systemuser'] },
  createdby: { targets: ['systemuser'] },
  modifiedby: { targets: ['systemuser'] },
}

const sysLookups: Record<string, LookupDef> = {
  createdby: { targets: ['systemuser'] },
  modifiedby: { targets: ['systemuser'] },
}

export const TABLES: readonly TableDef[] = [
  {
    logicalName: 'systemuser',
    entitySet: 'systemusers',
    primaryKey: 'systemuserid',
    primaryName: 'fullname',
    privilegeEntity: 'User',
    objectTypeCode: 8,
    ownership: 'org',
    columns: {
      ...common,
      systemuserid: 'guid',
      fullname: 'string',
      firstname: 'string',
      lastname: 'string',
      internalemailaddress: 'string',
      domainname: 'string',
      azureactivedirectoryobjectid: 'guid',
      applicationid: 'string',
      isdisabled: 'bool',
      businessunitid: 'guid',
      accessmode: 'int',
    },
    lookups: { ...sysLookups, defaultmailbox: { targets: ['mailbox'] } },
    alternateKeys: { azureactivedirectoryobjectid: ['azureactivedirectoryobjectid'] },
    indexed: ['internalemailaddress', 'azureactivedirectoryobjectid', 'applicationid'],
    changeTracking: true,
  },
  {
    logicalName: 'mailbox',
    entitySet: 'mailboxes',
    primaryKey: 'mailboxid',
    primaryName: 'name',
    privilegeEntity: 'Mailbox',
    objectTypeCode: 9606,
    ownership: 'user',
    columns: {
      ...common,
      mailboxid: 'guid',
      name: 'string',
      emailaddress: 'string',
      emailrouteraccessapproval: 'int',
      isemailaddressapprovedbyo365admin: 'bool',
      enabledforincomingemail: 'bool',
      enabledforoutgoingemail: 'bool',
      enabledforact: 'bool',
      incomingemailstatus: 'int',
      outgoingemailstatus: 'int',
      actstatus: 'int',
      incomingemaildeliverymethod: 'int',
      outgoingemaildeliverymethod: 'int',
      actdeliverymethod: 'int',
      testemailconfigurationscheduled: 'bool',
      testemailconfigurationretrycount: 'int',
      orgmarkedasprimaryforexchangesync: 'bool',
      isactsyncorgflagset: 'bool',
      postponemailboxprocessinguntil: 'datetime',
      postponesendinguntil: 'datetime',
      postponetestemailconfigurationuntil: 'datetime',
      lastsuccessfulsynccompletedon: 'datetime',
      itemsprocessedforlastsync: 'int',
      itemsfailedforlastsync: 'int',
      lastsyncerrorcode: 'int',
      lastsyncerrorcount: 'int',
      processemailreceivedafter: 'datetime',
      exchangesyncstatexml: 'memo',
      processanddeleteemails: 'bool',
      isforwardmailbox: 'bool',
      statecode: 'int',
      statuscode: 'int',
    },
    lookups: { ...sysLookups, ownerid: { targets: ['systemuser'] }, regardingobjectid: { targets: ['systemuser', 'queue'] }, emailserverprofile: { targets: ['emailserverprofile'] } },
    states: { 0: [1], 1: [2] },
    defaultState: 0,
    alternateKeys: {},
    indexed: ['emailaddress'],
    changeTracking: true,
  },
  {
    // Server-side sync's email server profiles (which mail server a mailbox syncs with). `servertype`
    // (EmailServerProfile table reference): 0 Exchange Server, 1 Other (POP3/SMTP), 2 Exchange Server
    // (Hybrid), 3 Exchange Online (Hybrid), 4 IMAP/SMTP.
    logicalName: 'emailserverprofile',
    entitySet: 'emailserverprofiles',
    primaryKey: 'emailserverprofileid',
    primaryName: 'name',
    privilegeEntity: 'EmailServerProfile',
    objectTypeCode: 9605,
    ownership: 'org',
    columns: {
      ...common,
      emailserverprofileid: 'guid',
      name: 'string',
      description: 'memo',
      servertype: 'int',
      incomingserverlocation: 'string',
      outgoingserverlocation: 'string',
      statecode: 'int',
      statuscode: 'int',
    },
    lookups: { ...sysLookups },
    alternateKeys: {},
    indexed: ['name'],
    changeTracking: false,
  },
  {
    logicalName: 'account',
    entitySet: 'accounts',
    primaryKey: 'accountid',
    primaryName: 'name',
    privilegeEntity: 'Account',
    objectTypeCode: 1,
    ownership: 'user',
    columns: {
      ...common,
      accountid: 'guid',
      name: 'string',
      accountnumber: 'string',
      emailaddress1: 'string',
      telephone1: 'string',
      fax: 'string',
      websiteurl: 'string',
      description: 'memo',
      address1_line1: 'string',
      address1_city: 'string',
      address1_postalcode: 'string',
      address1_country: 'string',
      statecode: 'int',
      statuscode: 'int',
    },
    lookups: { ...sysLookups, ownerid: { targets: ['systemuser'] }, primarycontactid: { targets: ['contact'] } },
    states: { 0: [1], 1: [2] },
    defaultState: 0,
    alternateKeys: { accountnumber: ['accountnumber'] },
    indexed: ['emailaddress1', 'accountnumber'],
    changeTracking: true,
  },
  {
    logicalName: 'contact',
    entitySet: 'contacts',
    primaryKey: 'contactid',
    primaryName: 'fullname',
    privilegeEntity: 'Contact',
    objectTypeCode: 2,
    ownership: 'user',
    columns: {
      ...common,
      contactid: 'guid',
      firstname: 'string',
      lastname: 'string',
      middlename: 'string',
      fullname: 'string',
      nickname: 'string',
      emailaddress1: 'string',
      emailaddress2: 'string',
      emailaddress3: 'string',
      telephone1: 'string',
      telephone2: 'string',
      mobilephone: 'string',
      fax: 'string',
      jobtitle: 'string',
      department: 'string',
      birthdate: 'datetime',
      anniversary: 'datetime',
      description: 'memo',
      assistantname: 'string',
      managername: 'string',
      childrensnames: 'string',
      governmentid: 'string',
      ftpsiteurl: 'string',
      address1_line1: 'string',
      address1_line2: 'string',
      address1_line3: 'string',
      address1_city: 'string',
      address1_stateorprovince: 'string',
      address1_postalcode: 'string',
      address1_country: 'string',
      address2_line1: 'string',
      address2_line2: 'string',
      address2_line3: 'string',
      address2_city: 'string',
      address2_stateorprovince: 'string',
      address2_postalcode: 'string',
      address2_country: 'string',
      address3_line1: 'string',
      address3_line2: 'string',
      address3_line3: 'string',
      address3_city: 'string',
      address3_stateorprovince: 'string',
      address3_postalcode: 'string',
      address3_country: 'string',
      concord_linkid: 'string',
      statecode: 'int',
      statuscode: 'int',
    },
    lookups: { ...sysLookups, ownerid: { targets: ['systemuser'] }, parentcustomerid: { targets: ['account', 'contact'] } },
    states: { 0: [1], 1: [2] },
    defaultState: 0,
    readOnly: ['fullname'],
    alternateKeys: { emailaddress1: ['emailaddress1'], concord_linkid: ['concord_linkid'] },
    indexed: ['emailaddress1', 'emailaddress2', 'emailaddress3', 'concord_linkid'],
    changeTracking: true,
  },
  {
    logicalName: 'email',
    entitySet: 'emails',
    primaryKey: 'activityid',
    primaryName: 'subject',
    privilegeEntity: 'Activity',
    objectTypeCode: 4202,
    ownership: 'user',
    columns: {
      ...activityColumns,
      directioncode: 'bool',
      messageid: 'string',
      inreplyto: 'string',
      conversationindex: 'string',
      trackingtoken: 'string',
      correlationmethod: 'int',
      sender: 'string',
      torecipients: 'string',
      senton: 'datetime',
      attachmentcount: 'int',
      baseconversationindexhash: 'int',
    },
    lookups: {
      ...activityLookups,
      parentactivityid: { targets: ['email'] },
      correlatedactivityid: { targets: ['email'] },
      sendermailboxid: { targets: ['mailbox'] },
      receivingmailboxid: { targets: ['mailbox'] },
    },
    states: { 0: [1, 8], 1: [2, 3, 4, 6, 7], 2: [5] },
    defaultState: 0,
    // email.md "Read-only columns/attributes": ActivityTypeCode, AttachmentCount, SentOn, SenderMailboxId,
    // ScheduledDurationMinutes (not a column here), … ConversationIndex, CorrelationMethod, InReplyTo.
    readOnly: ['activitytypecode', 'attachmentcount', 'senton', 'sendermailboxid'],
    createOnly: ['inreplyto', 'conversationindex', 'correlationmethod'],
    alternateKeys: { messageid: ['messageid'], concord_linkid: ['concord_linkid'] },
    indexed: ['messageid', 'concord_linkid', 'conversationindex', 'trackingtoken'],
    partyCollection: 'email_activity_parties',
    changeTracking: true,
  },
  {
    logicalName: 'appointment',
    entitySet: 'appointments',
    primaryKey: 'activityid',
    primaryName: 'subject',
    privilegeEntity: 'Activity',
    objectTypeCode: 4201,
    ownership: 'user',
    columns: {
      ...activityColumns,
      scheduleddurationminutes: 'int',
      isalldayevent: 'bool',
      location: 'string',
      instancetypecode: 'int',
      globalobjectid: 'string',
      outlookownerapptid: 'int',
      seriesid: 'guid',
    },
    lookups: { ...activityLookups },
    states: { 0: [1, 2], 1: [3], 2: [4], 3: [5, 6] },
    defaultState: 3,
    readOnly: ['activitytypecode'],
    alternateKeys: { concord_linkid: ['concord_linkid'] },
    indexed: ['concord_linkid'],
    partyCollection: 'appointment_activity_parties',
    changeTracking: true,
  },
  {
    logicalName: 'task',
    entitySet: 'tasks',
    primaryKey: 'activityid',
    primaryName: 'subject',
    privilegeEntity: 'Activity',
    objectTypeCode: 4212,
    ownership: 'user',
    columns: { ...activityColumns, percentcomplete: 'int', scheduleddurationminutes: 'int' },
    lookups: { ...activityLookups },
    states: { 0: [2, 3, 4, 7], 1: [5], 2: [6] },
    defaultState: 0,
    readOnly: ['activitytypecode'],
    alternateKeys: { concord_linkid: ['concord_linkid'] },
    indexed: ['concord_linkid'],
    changeTracking: true,
  },
  {
    logicalName: 'activitypointer',
    entitySet: 'activitypointers',
    primaryKey: 'activityid',
    primaryName: 'subject',
    privilegeEntity: 'Activity',
    objectTypeCode: 4200,
    ownership: 'user',
    columns: { ...activityColumns },
    lookups: { ...activityLookups },
    alternateKeys: {},
    indexed: [],
    changeTracking: false,
    virtualOf: ['email', 'appointment', 'task'],
  },
  {
    logicalName: 'activityparty',
    entitySet: 'activityparties',
    primaryKey: 'activitypartyid',
    primaryName: 'addressused',
    privilegeEntity: 'Activity',
    objectTypeCode: 135,
    ownership: 'org',
    columns: {
      activitypartyid: 'guid',
      participationtypemask: 'int',
      addressused: 'string',
      exchangeentryid: 'string',
      ispartydeleted: 'bool',
      versionnumber: 'int',
    },
    lookups: { activityid: { targets: ['email', 'appointment', 'task'] }, partyid: { targets: ['systemuser', 'contact', 'account', 'lead', 'queue'] } },
    alternateKeys: {},
    indexed: ['_activityid_value'],
    changeTracking: false,
  },
  {
    // Sales: a prospect (lead.md). statecode 0 Open, 1 Qualified, 2 Disqualified; statuscode 1 New,
    // 2 Contacted (0); 3 Qualified (1); 4 Lost, 5 Cannot Contact, 6 No Longer Interested, 7 Canceled (2).
    logicalName: 'lead',
    entitySet: 'leads',
    primaryKey: 'leadid',
    primaryName: 'fullname',
    privilegeEntity: 'Lead',
    objectTypeCode: 4,
    ownership: 'user',
    columns: {
      ...common,
      leadid: 'guid',
      subject: 'string',
      firstname: 'string',
      middlename: 'string',
      lastname: 'string',
      fullname: 'string',
      companyname: 'string',
      jobtitle: 'string',
      emailaddress1: 'string',
      emailaddress2: 'string',
      emailaddress3: 'string',
      telephone1: 'string',
      mobilephone: 'string',
      websiteurl: 'string',
      description: 'memo',
      leadsourcecode: 'int',
      statecode: 'int',
      statuscode: 'int',
    },
    lookups: {
      ...sysLookups,
      ownerid: { targets: ['systemuser'] },
      parentaccountid: { targets: ['account'] },
      parentcontactid: { targets: ['contact'] },
      customerid: { targets: ['account', 'contact'] },
    },
    states: { 0: [1, 2], 1: [3], 2: [4, 5, 6, 7] },
    defaultState: 0,
    readOnly: ['fullname'],
    alternateKeys: {},
    indexed: ['emailaddress1', 'emailaddress2', 'emailaddress3'],
    changeTracking: true,
  },
  {
    // Sales: a potential sale (opportunity.md). statecode 0 Open, 1 Won, 2 Lost; statuscode 1 In Progress,
    // 2 On Hold (0); 3 Won (1); 4 Canceled, 5 Out-Sold (2). Won/Lost only through WinOpportunity/LoseOpportunity.
    logicalName: 'opportunity',
    entitySet: 'opportunities',
    primaryKey: 'opportunityid',
    primaryName: 'name',
    privilegeEntity: 'Opportunity',
    objectTypeCode: 3,
    ownership: 'user',
    columns: {
      ...common,
      opportunityid: 'guid',
      name: 'string',
      description: 'memo',
      emailaddress: 'string',
      estimatedvalue: 'decimal',
      estimatedclosedate: 'datetime',
      actualclosedate: 'datetime',
      closeprobability: 'int',
      statecode: 'int',
      statuscode: 'int',
    },
    lookups: {
      ...sysLookups,
      ownerid: { targets: ['systemuser'] },
      parentaccountid: { targets: ['account'] },
      parentcontactid: { targets: ['contact'] },
      customerid: { targets: ['account', 'contact'] },
      originatingleadid: { targets: ['lead'] },
    },
    states: { 0: [1, 2], 1: [3], 2: [4, 5] },
    defaultState: 0,
    alternateKeys: {},
    indexed: [],
    changeTracking: true,
  },
  {
    // Column security (field-security-entities): a profile groups field permissions and principals.
    logicalName: 'fieldsecurityprofile',
    entitySet: 'fieldsecurityprofiles',
    primaryKey: 'fieldsecurityprofileid',
    primaryName: 'name',
    privilegeEntity: 'FieldSecurityProfile',
    objectTypeCode: 1200,
    ownership: 'org',
    columns: { ...common, fieldsecurityprofileid: 'guid', name: 'string', description: 'memo' },
    lookups: { ...sysLookups },
    alternateKeys: {},
    indexed: ['name'],
    changeTracking: false,
  },
  {
    // canread/cancreate/canupdate: global choice field_security_permission_type, 0 Not Allowed, 4 Allowed.
    logicalName: 'fieldpermission',
    entitySet: 'fieldpermissions',
    primaryKey: 'fieldpermissionid',
    primaryName: 'attributelogicalname',
    privilegeEntity: 'FieldPermission',
    objectTypeCode: 1201,
    ownership: 'org',
    columns: {
      versionnumber: 'int',
      fieldpermissionid: 'guid',
      entityname: 'string',
      attributelogicalname: 'string',
      canread: 'int',
      cancreate: 'int',
      canupdate: 'int',
      canreadunmasked: 'int',
    },
    lookups: { fieldsecurityprofileid: { targets: ['fieldsecurityprofile'] } },
    alternateKeys: {},
    indexed: ['_fieldsecurityprofileid_value'],
    changeTracking: false,
  },
  {
    // Intersect table of the systemuserprofiles_association many-to-many relationship (read-only; write
    // through POST/DELETE …/systemuserprofiles_association/$ref).
    logicalName: 'systemuserprofiles',
    entitySet: 'systemuserprofilescollection',
    primaryKey: 'systemuserprofileid',
    primaryName: 'systemuserprofileid',
    privilegeEntity: 'FieldSecurityProfile',
    objectTypeCode: 1202,
    ownership: 'org',
    columns: { versionnumber: 'int', systemuserprofileid: 'guid', systemuserid: 'guid', fieldsecurityprofileid: 'guid' },
    lookups: {},
    alternateKeys: {},
    indexed: ['systemuserid', 'fieldsecurityprofileid'],
    changeTracking: false,
    apiReadOnly: true,
  },
  {
    logicalName: 'queue',
    entitySet: 'queues',
    primaryKey: 'queueid',
    primaryName: 'name',
    privilegeEntity: 'Queue',
    objectTypeCode: 2020,
    ownership: 'user',
    columns: { ...common, queueid: 'guid', name: 'string', emailaddress: 'string', description: 'memo', statecode: 'int', statuscode: 'int' },
    lookups: { ...sysLookups, ownerid: { targets: ['systemuser'] }, defaultmailbox: { targets: ['mailbox'] } },
    states: { 0: [1], 1: [2] },
    defaultState: 0,
    alternateKeys: {},
    indexed: ['emailaddress'],
    changeTracking: true,
  },
  {
    logicalName: 'usersettings',
    entitySet: 'usersettingscollection',
    primaryKey: 'systemuserid',
    primaryName: 'systemuserid',
    privilegeEntity: 'UserSettings',
    objectTypeCode: 150,
    ownership: 'org',
    columns: {
      ...common,
      systemuserid: 'guid',
      incomingemailfilteringmethod: 'int',
      trackcategorizeditems: 'bool',
      synccontactcompany: 'bool',
      timezonecode: 'int',
    },
    lookups: { ...sysLookups },
    alternateKeys: {},
    indexed: [],
    changeTracking: true,
  },
  {
    logicalName: 'userquery',
    entitySet: 'userqueries',
    primaryKey: 'userqueryid',
    primaryName: 'name',
    privilegeEntity: 'UserQuery',
    objectTypeCode: 4230,
    ownership: 'user',
    columns: {
      ...common,
      userqueryid: 'guid',
      name: 'string',
      description: 'memo',
      returnedtypecode: 'string',
      querytype: 'int',
      fetchxml: 'memo',
      concord_odatafilter: 'memo',
      statecode: 'int',
      statuscode: 'int',
    },
    lookups: { ...sysLookups, ownerid: { targets: ['systemuser'] } },
    states: { 0: [1], 1: [2] },
    defaultState: 0,
    alternateKeys: {},
    indexed: [],
    changeTracking: true,
  },
  {
    logicalName: 'tracelog',
    entitySet: 'tracelogs',
    primaryKey: 'tracelogid',
    primaryName: 'text',
    privilegeEntity: 'TraceLog',
    objectTypeCode: 4613,
    ownership: 'org',
    columns: { ...common, tracelogid: 'guid', text: 'memo', level: 'int', errortypecode: 'int', tracecode: 'int', tracestatus: 'bool' },
    lookups: { ...sysLookups, regardingobjectid: { targets: ['mailbox', 'systemuser', 'queue'] } },
    alternateKeys: {},
    indexed: [],
    changeTracking: true,
  },
]

export const TABLES_BY_SET = new Map(TABLES.map((t) => [t.entitySet, t]))
export const TABLES_BY_NAME = new Map(TABLES.map((t) => [t.logicalName, t]))

export function tableByName(logicalName: string): TableDef {
  const t = TABLES_BY_NAME.get(logicalName)
  if (!t) throw new Error(`unknown table ${logicalName}`)
  return t
}

/** Columns no table lets a client write (IsValidForCreate and IsValidForUpdate false everywhere). */
export const ALWAYS_READ_ONLY = new Set(['createdon', 'modifiedon', 'versionnumber'])
/** Lookups filled by the platform (createdby, modifiedby): binding them is refused like a read-only column. */
export const READ_ONLY_LOOKUPS = new Set(['createdby', 'modifiedby'])
/** Writable in Dataverse but derived by the emulator from another value (accepted and recomputed). */
export const DERIVED_COLUMNS = new Set(['regardingobjecttypecode'])

export function isReadOnly(table: TableDef, column: string): boolean {
  return ALWAYS_READ_ONLY.has(column) || READ_ONLY_LOOKUPS.has(column) || (table.readOnly?.includes(column) ?? false)
}

export interface NavTarget {
  column: string
  target: string
}

/**
 * Single-valued navigation property names per table, e.g. regardingobjectid_contact_email and the
 * shorter regardingobjectid_contact (both accepted), ownerid, partyid_systemuser.
 */
export function navigationFor(table: TableDef): Map<string, NavTarget> {
  const out = new Map<string, NavTarget>()
  for (const [col, def] of Object.entries(table.lookups)) {
    if (def.targets.length === 1) out.set(col, { column: col, target: def.targets[0] as string })
    for (const target of def.targets) {
      out.set(`${col}_${target}_${table.logicalName}`, { column: col, target })
      out.set(`${col}_${target}`, { column: col, target })
    }
  }
  return out
}

const navCache = new Map<string, Map<string, NavTarget>>()
export function navigation(table: TableDef): Map<string, NavTarget> {
  let m = navCache.get(table.logicalName)
  if (!m) {
    m = navigationFor(table)
    navCache.set(table.logicalName, m)
  }
  return m
}

/**
 * Canonical navigation name used in $metadata: `regardingobjectid_<target>_<activity>` (email.md:
 * regardingobjectid_account_email), other polymorphic lookups `<column>_<target>` (customerid_account,
 * parentcustomerid_contact, partyid_lead), single-target lookups the column name.
 */
export function canonicalNavName(table: TableDef, column: string, target: string): string {
  const def = table.lookups[column]
  if (def && def.targets.length === 1) return column
  if (column === 'regardingobjectid') return `${column}_${target}_${table.logicalName}`
  return `${column}_${target}`
}

export const ORGANIZATION_ID = '6f1c3a2e-0000-4000-8000-00000000c0de'
export const ROOT_BUSINESS_UNIT_ID = '6f1c3a2e-0000-4000-8000-0000000000b0'
